"""Account operations: creating hosts and staff, logging in with throttling, password resets."""
import hashlib
from functools import cache

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import begin_write, db, login_manager
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import Delivery, User
from app.queue import get_redis
from app.urls import external_url


class EmailTaken(Exception):
    """An account with this email already exists."""


class LoginThrottled(Exception):
    """Too many failed logins for this email from this address."""


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


def _dummy_hash() -> str:
    method = current_app.config.get("PASSWORD_HASH_METHOD") or ""
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash("no such account", **_hash_options())
    return _DUMMY_HASHES[method]


def create_user(email: str, display_name: str, password: str, *, is_staff: bool = False) -> User:
    """Create a host (or staff) account; raise ``EmailTaken`` if the email is in use.

    The password is hashed first, then the write lock is taken (``begin_write``): the hash
    costs ~0.1 s of CPU that no other writer should wait for.
    """
    password_hash = hash_password(password)
    begin_write()
    if find_user(email) is not None:
        raise EmailTaken(email)
    user = User(email=normalize_email(email), display_name=display_name.strip(), is_staff=is_staff,
                password_hash=password_hash)
    db.session.add(user)
    db.session.flush()
    return user


def _throttle_key(email: str, remote_addr: str) -> str:
    digest = hashlib.sha256(f"{normalize_email(email)}|{remote_addr}".encode()).hexdigest()
    return f"login-failures:{digest}"


def authenticate(email: str, password: str, remote_addr: str) -> User | None:
    """The user if the password matches; counts failures and raises ``LoginThrottled`` past the limit."""
    config = current_app.config
    redis = get_redis()
    key = _throttle_key(email, remote_addr or "-")
    failures = int(redis.get(key) or 0)
    if failures >= config["LOGIN_THROTTLE_LIMIT"]:
        raise LoginThrottled()
    user = find_user(email)
    db.session.rollback()  # no transaction is held while the hash is checked
    if user is None:
        check_password_hash(_dummy_hash(), password)
    elif user.check_password(password):
        redis.delete(key)
        return user
    pipe = redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, config["LOGIN_THROTTLE_WINDOW"])
    pipe.execute()
    return None


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
    """Email a reset link if the account exists (callers answer the same either way)."""
    user = find_user(email)
    if user is not None:
        queue_email("password_reset", to_email=user.email, to_name=user.display_name,
                    locale=user.locale, payload={"user_id": user.id})


def reset_password(user: User, password: str) -> User:
    """Set a new password (which also invalidates the reset link and every open session).

    Hashes first, then takes the write lock; returns the user as loaded under it.
    """
    password_hash, user_id = hash_password(password), user.id
    begin_write()
    user = db.session.get(User, user_id)
    user.password_hash = password_hash
    user.end_sessions()
    return user


@email_kind("password_reset", subject=lambda ctx: _("パスワード再設定のご案内"))
def _password_reset_context(delivery: Delivery) -> dict:
    user = db.session.get(User, delivery.payload["user_id"])
    if user is None:
        raise SkipDelivery("account deleted")
    return {"user": user, "reset_url": external_url("auth.reset_password", token=make_reset_token(user))}


@cache
def _user_by_session_token():
    # Built once, run with ``session_token``: every logged-in request runs it, and building it
    # (two joined loads) and computing its cache key cost more than running it (~150 µs a request).
    return (select(User).where(User.session_token == bindparam("session_token"))
            .options(joinedload(User.zoom_connection), joinedload(User.legacy_zoom_link)))


@login_manager.user_loader
def load_user(session_token: str) -> User | None:
    """Flask-Login: the account whose current session token the cookie carries (None once rotated).

    Its Zoom links come in the same query: every host page shows their state (the banners).
    """
    return db.session.scalar(_user_by_session_token(), {"session_token": session_token})
