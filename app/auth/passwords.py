"""What a password must be: at least ``MIN_LENGTH`` characters and not one everybody guesses first.

The same rule everywhere a password is set (signup, reset, change), as ASVS 5.0 6.2 asks: a
minimum length and a check against a list of common passwords (``common_passwords.txt``, derived
from Django's list; see its header). No composition rules (NIST SP 800-63B).
"""
from functools import cache
from pathlib import Path

from flask_babel import gettext as _

MIN_LENGTH = 10
MAX_LENGTH = 128
_LIST = Path(__file__).with_name("common_passwords.txt")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lowercased (about 1,800 passwords of 10 characters or more)."""
    with _LIST.open(encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def is_common(password: str) -> bool:
    """True for a password on the list (any letter case) or one character repeated."""
    folded = password.strip().lower()
    return folded in common_passwords() or len(set(folded)) <= 1


def weakness(password: str, email: str | None = None) -> str | None:
    """Why ``password`` cannot be used, in the reader's language, or None when it can.

    :param email: the account's email address, which is not a password either.
    """
    if len(password) < MIN_LENGTH:
        return _("パスワードは%(n)d文字以上で入力してください。", n=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        return _("パスワードは%(n)d文字以内で入力してください。", n=MAX_LENGTH)
    if is_common(password):
        return _("このパスワードはよく使われていて推測されやすいため、使えません。別のパスワードにしてください。")
    if email and password.strip().lower() in {email.strip().lower(), email.strip().lower().split("@")[0]}:
        return _("メールアドレスと同じパスワードは使えません。別のパスワードにしてください。")
    return None
