"""Account operations: signing up (with email confirmation), logging in with throttling, changing and
resetting passwords, and the emails these send.

Nothing here tells a stranger whether an email address has an account: a failed login takes as
long either way (a dummy hash), and signing up with a registered address answers as for a new one
while its owner gets an email instead.
"""
from datetime import datetime
from functools import cache

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from app import clock, limits
from app.auth import throttle, totp
from app.auth.throttle import LoginThrottled  # noqa: F401  (raised by ``authenticate``; views catch it here)
from app.extensions import begin_write, db, login_manager
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import Delivery, User
from app.urls import external_url


class EmailTaken(Exception):
    """An account with this email already exists."""


class WrongPassword(Exception):
    """The current password given to change it is not the account's."""


class SameEmail(Exception):
    """The new login address asked for is the account's current one."""


class EmailChangeFailed(Exception):
    """An email-change link that cannot be applied: the address got taken meanwhile."""


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def find_user(email: str) -> User | None:
    """The account with this email, if any."""
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def hash_password(password: str) -> str:
    """A salted hash of ``password`` (slow on purpose: compute it before taking the write lock)."""
    return generate_password_hash(password, **_hash_options())


def _hash_options() -> dict:
    method = current_app.config.get("PASSWORD_HASH_METHOD")
    return {"method": method} if method else {}


#: Compared against when no account has the email, so a failed login takes as long either way.
_DUMMY_HASHES: dict[str, str] = {}


def dummy_hash() -> str:
    """The hash a failed login for an unknown email is checked against (made once per process)."""
    method = current_app.config.get("PASSWORD_HASH_METHOD") or ""
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash("no such account", **_hash_options())
    return _DUMMY_HASHES[method]


def _add_user(email: str, display_name: str, password_hash: str, *, is_staff: bool, verified: bool) -> User:
    user = User(email=normalize_email(email), display_name=display_name.strip(), is_staff=is_staff,
                password_hash=password_hash, email_verified_at=clock.now() if verified else None)
    db.session.add(user)
    db.session.flush()
    return user


def create_user(email: str, display_name: str, password: str, *, is_staff: bool = False,
                verified: bool = True) -> User:
    """Create an account as an operator does (``create-staff``, demo data); raise ``EmailTaken`` if in use.

    :param verified: the operator vouches for the address (default); hosts who sign up
        themselves go through ``sign_up`` and confirm it by email.

    The password is hashed first, then the write lock is taken (``begin_write``): the hash
    costs ~0.1 s of CPU that no other writer should wait for.
    """
    password_hash = hash_password(password)
    begin_write()
    if find_user(email) is not None:
        raise EmailTaken(email)
    return _add_user(email, display_name, password_hash, is_staff=is_staff, verified=verified)


def sign_up(email: str, display_name: str, password: str) -> User | None:
    """A host signs up: a new, unconfirmed account and a confirmation email; returns it.

    For an address that already has an account, nothing changes on it: its owner gets the
    「このメールアドレスはすでに登録されています」 email (with login and reset links) and None is
    returned. Both cost one password hash, and callers answer both alike.
    """
    password_hash = hash_password(password)  # either way, so both answers take as long
    begin_write()
    existing = find_user(email)
    if existing is not None:
        if throttle.email_allowed("account_exists", existing.email):
            queue_email("account_exists", to_email=existing.email, to_name=existing.display_name,
                        locale=existing.locale, payload={"user_id": existing.id})
        return None
    user = _add_user(email, display_name, password_hash, is_staff=False, verified=False)
    throttle.email_allowed("email_verification", user.email)  # the resend button waits its turn
    _queue_verification(user)
    return user


def authenticate(email: str, password: str, remote_addr: str | None) -> User | None:
    """The user if the password matches, else None; raises ``LoginThrottled`` when attempts must wait.

    Known and unknown emails are throttled and timed alike (a dummy hash), and no transaction
    is held while the hash is checked. A closed account (``User.deleted_at``) answers as an
    unknown one.
    """
    account = normalize_email(email)
    throttle.check(account, remote_addr)
    user = find_user(account)
    if user is not None and user.deleted_at is not None:
        user = None
    stored = user.password_hash if user is not None else dummy_hash()  # read before the rollback expires it
    db.session.rollback()
    if check_password_hash(stored, password) and user is not None:
        if not totp.required(user):  # else the failures are forgotten once the code is right too
            throttle.forget(account, remote_addr)
        return user
    throttle.record_failure(account, remote_addr)
    return None


# --- email confirmation ----------------------------------------------------------------------------

def _verify_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="email-verification")


def make_verify_token(user: User) -> str:
    """A signed token confirming ``user``'s current email address (valid ``EMAIL_VERIFY_MAX_AGE``)."""
    return _verify_serializer().dumps({"id": user.id, "e": user.email})


def user_for_verify_token(token: str) -> User | None:
    """The user whose address the token confirms, or None if it is invalid, expired or for another address."""
    try:
        data = _verify_serializer().loads(token, max_age=current_app.config["EMAIL_VERIFY_MAX_AGE"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.get(User, data.get("id"))
    if user is None or user.email != data.get("e"):
        return None
    return user


def _queue_verification(user: User) -> None:
    queue_email("email_verification", to_email=user.email, to_name=user.display_name, locale=user.locale,
                payload={"user_id": user.id})


def send_verification(user: User) -> bool:
    """Email ``user`` a new confirmation link (「確認メールを再送」); False when one went out just now."""
    if user.email_verified or not throttle.email_allowed("email_verification", user.email):
        return False
    _queue_verification(user)
    return True


def verify_email(user: User) -> None:
    """Mark ``user``'s address confirmed: their public pages take bookings from now on."""
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()


# --- passwords ---------------------------------------------------------------------------------------

def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="password-reset")


def make_reset_token(user: User) -> str:
    """A signed token that dies after an hour or once the password changes."""
    # Part of the current hash is signed in, so a used (or older) link stops working.
    return _reset_serializer().dumps({"id": user.id, "h": user.password_hash[-12:]})


def user_for_reset_token(token: str) -> User | None:
    """The user a reset token belongs to, or None if it is invalid, expired or used."""
    try:
        data = _reset_serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.get(User, data.get("id"))
    if user is None or user.password_hash[-12:] != data.get("h"):
        return None
    return user


def request_password_reset(email: str) -> None:
    """Email a reset link if the account exists (callers answer the same either way); a mailbox
    gets a few links an hour at most (``MAILBOX_LIMITS['reset']``), however often it is asked."""
    user = find_user(email)
    if user is not None and limits.allow_for_mailbox("reset", user.email):
        queue_email("password_reset", to_email=user.email, to_name=user.display_name,
                    locale=user.locale, payload={"user_id": user.id})


def _set_password(user_id: int, password_hash: str) -> User:
    """Under the write lock: the new hash, every session ended, and the owner told by email."""
    begin_write()
    user = db.session.get(User, user_id)
    user.password_hash = password_hash
    user.end_sessions()
    queue_email("password_changed", to_email=user.email, to_name=user.display_name, locale=user.locale,
                payload={"user_id": user.id, "at": clock.now().isoformat()})
    return user


def reset_password(user: User, password: str, remote_addr: str | None = None) -> User:
    """Set a new password from a reset link (which also invalidates the link and every open session).

    The link proves the owner reads the mailbox: the address counts as confirmed, and the
    account's failed logins are forgotten. Hashes first, then takes the write lock; returns the
    user as loaded under it.
    """
    password_hash, user_id = hash_password(password), user.id
    user = _set_password(user_id, password_hash)
    verify_email(user)
    throttle.forget(user.email, remote_addr)
    return user


def change_password(user: User, current_password: str, new_password: str, remote_addr: str | None) -> User:
    """A logged-in user changes their password: every other session ends (the caller keeps its own
    by logging in again with the new session token) and a notice goes to the account's address.

    Raises ``WrongPassword`` (counted as a failed login) or ``LoginThrottled``; returns the user
    as loaded under the write lock.
    """
    throttle.check(user.email, remote_addr)
    if not user.check_password(current_password):
        throttle.record_failure(user.email, remote_addr)
        raise WrongPassword()
    password_hash, user_id = hash_password(new_password), user.id
    return _set_password(user_id, password_hash)


# --- changing the login address ---------------------------------------------------------------------

#: Email kinds of the address change (the closing of an account anonymises their rows).
EMAIL_CHANGE_KINDS = ("email_change_confirm", "email_change_taken", "email_changed")


def _email_change_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="email-change")


def email_change_max_age() -> int:
    """Seconds an email-change link stays valid (``EMAIL_CHANGE_MAX_AGE``, default 24 hours)."""
    return current_app.config.get("EMAIL_CHANGE_MAX_AGE", 24 * 3600)


def make_email_change_token(user: User, new_email: str) -> str:
    """A signed token moving ``user``'s login to ``new_email``.

    Dies after ``email_change_max_age``, once used (the current address is signed in), and when
    the password changes (so resetting a stolen password also kills a change the thief asked for).
    """
    return _email_change_serializer().dumps({"id": user.id, "e": user.email, "n": new_email,
                                             "h": user.password_hash[-12:]})


def email_change_for_token(token: str) -> tuple[User, str] | None:
    """``(user, new address)`` of a valid email-change link, or None (invalid, expired, used, closed)."""
    try:
        data = _email_change_serializer().loads(token, max_age=email_change_max_age())
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.get(User, data.get("id"))
    if (user is None or user.deleted_at is not None or user.email != data.get("e")
            or user.password_hash[-12:] != data.get("h") or not data.get("n")):
        return None
    return user, data["n"]


def request_email_change(user: User, password: str, new_email: str, remote_addr: str | None) -> str:
    """A logged-in host asks to log in with ``new_email``: a confirmation link goes to that address;
    nothing changes until it is followed (``change_email``). Returns the normalized address.

    When another account already uses the address, that mailbox is told instead (no link), and the
    caller answers exactly as for a free address: the form never reveals whose address it is.

    :raises WrongPassword: (counted as a failed login), ``LoginThrottled``, ``SameEmail``.
    """
    throttle.check(user.email, remote_addr)
    if not user.check_password(password):
        throttle.record_failure(user.email, remote_addr)
        raise WrongPassword()
    new = normalize_email(new_email)
    if new == user.email:
        raise SameEmail()
    user_id = user.id
    begin_write()
    user = db.session.get(User, user_id)
    taken = find_user(new) is not None
    kind = "email_change_taken" if taken else "email_change_confirm"
    if throttle.email_allowed("email_change", new):  # one email a minute to a typed address, either way
        queue_email(kind, to_email=new, to_name="" if taken else user.display_name, locale=user.locale,
                    payload={"user_id": user.id, "new_email": new})
    return new


def change_email(user: User, new_email: str) -> User:
    """Follow an email-change link: the login address becomes ``new_email`` (confirmed by the link),
    and the old address is told. Takes the write lock; returns the user as loaded under it.

    :raises EmailChangeFailed: another account took the address meanwhile.
    """
    user_id = user.id
    begin_write()
    user = db.session.get(User, user_id)
    if find_user(new_email) is not None:
        raise EmailChangeFailed(new_email)
    old = user.email
    user.email = new_email
    user.email_verified_at = user.email_verified_at or clock.now()
    if user.contact_email == new_email:
        user.contact_email = ""  # the login address is the default contact address
    queue_email("email_changed", to_email=old, to_name=user.display_name, locale=user.locale,
                payload={"user_id": user.id, "new_email": new_email, "at": clock.now().isoformat()})
    db.session.flush()
    return user


# --- emails --------------------------------------------------------------------------------------------

def _account_of(delivery: Delivery) -> User:
    user = db.session.get(User, delivery.payload["user_id"])
    if user is None:
        raise SkipDelivery("account deleted")
    return user


@email_kind("password_reset", subject=lambda ctx: _("パスワード再設定のご案内"))
def _password_reset_context(delivery: Delivery) -> dict:
    user = _account_of(delivery)
    return {"user": user, "reset_url": external_url("auth.reset_password", token=make_reset_token(user))}


@email_kind("email_verification", subject=lambda ctx: _("メールアドレスの確認のお願い"))
def _email_verification_context(delivery: Delivery) -> dict:
    user = _account_of(delivery)
    if user.email_verified or user.email != delivery.to_email:
        raise SkipDelivery("address already confirmed or changed")
    return {"user": user, "verify_url": external_url("auth.verify_email", token=make_verify_token(user)),
            "valid_days": current_app.config["EMAIL_VERIFY_MAX_AGE"] // 86400}


@email_kind("account_exists", subject=lambda ctx: _("このメールアドレスはすでに登録されています"))
def _account_exists_context(delivery: Delivery) -> dict:
    return {"user": _account_of(delivery), "login_url": external_url("auth.login"),
            "reset_url": external_url("auth.request_reset")}


@email_kind("password_changed", subject=lambda ctx: _("パスワードが変更されました"))
def _password_changed_context(delivery: Delivery) -> dict:
    return {"user": _account_of(delivery), "changed_at": datetime.fromisoformat(delivery.payload["at"]),
            "reset_url": external_url("auth.request_reset")}


@email_kind("email_change_confirm", subject=lambda ctx: _("メールアドレス変更の確認"))
def _email_change_confirm_context(delivery: Delivery) -> dict:
    user = _account_of(delivery)
    if user.deleted_at is not None or user.email == delivery.payload["new_email"]:
        raise SkipDelivery("account closed or address changed already")
    # The link is signed as it is sent (a secret is never stored in the outbox row).
    token = make_email_change_token(user, delivery.payload["new_email"])
    return {"user": user, "new_email": delivery.payload["new_email"],
            "confirm_url": external_url("account.confirm_email_change", token=token),
            "valid_hours": email_change_max_age() // 3600}


@email_kind("email_change_taken", subject=lambda ctx: _("メールアドレス変更の手続きについて"))
def _email_change_taken_context(delivery: Delivery) -> dict:
    return {"new_email": delivery.payload["new_email"], "login_url": external_url("auth.login"),
            "reset_url": external_url("auth.request_reset")}


@email_kind("email_changed", subject=lambda ctx: _("ログイン用メールアドレスが変更されました"))
def _email_changed_context(delivery: Delivery) -> dict:
    return {"user": _account_of(delivery), "new_email": delivery.payload["new_email"],
            "changed_at": datetime.fromisoformat(delivery.payload["at"]),
            "reset_url": external_url("auth.request_reset")}


@cache
def _user_by_session_token():
    # Built once, run with ``session_token``: every logged-in request runs it, and building it
    # (two joined loads) and computing its cache key cost more than running it.
    return (select(User).where(User.session_token == bindparam("session_token"), User.deleted_at.is_(None))
            .options(joinedload(User.zoom_connection), joinedload(User.legacy_zoom_link)))


@login_manager.user_loader
def load_user(session_token: str) -> User | None:
    """Flask-Login: the account whose current session token the cookie carries (None once rotated).

    Its Zoom links come in the same query: every host page shows their state (the banners).
    """
    return db.session.scalar(_user_by_session_token(), {"session_token": session_token})
