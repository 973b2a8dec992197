"""Staff's second factor: time-based one-time codes (TOTP, RFC 6238) from an authenticator app.

Staff accounts need one whenever ``STAFF_REQUIRE_TOTP`` is on (always with ``APP_ENV=production``;
off in development, so the demo staff account stays password-only). A staff member without a
secret enrols at their next login: the page shows a QR code drawn here (segno, an inline SVG:
nothing leaves the server) and the secret as text; the secret is kept only once a code from the
app proves it was read, encrypted at rest (``app.crypto``). A code is accepted once
(``User.totp_last_step``), one 30-second step early or late at most, and wrong codes count as
failed logins (``app.auth.throttle``). ``flask reset-staff-totp EMAIL`` clears a lost device's.
"""
import hmac

import pyotp
from flask import current_app

from app import clock, crypto
from app.auth import throttle
from app.extensions import begin_write, db
from app.models import User
from app.queue import get_redis

STEP_SECONDS = 30
#: Codes from one step before or after now are accepted too (clocks drift; typing takes time).
DRIFT_STEPS = 1


class WrongCode(Exception):
    """Not the current code of the account's authenticator (or one already used)."""


def required(user: User) -> bool:
    """True when ``user`` must give a code after the password."""
    return bool(current_app.config["STAFF_REQUIRE_TOTP"]) and user.is_staff


def is_enrolled(user: User) -> bool:
    """True once the user's authenticator app holds a confirmed secret."""
    return user.totp_secret is not None


def _pending_key(user: User) -> str:
    return f"totp-enrolment:{user.id}"


def pending_secret(user: User) -> str:
    """The secret being enrolled (the same one while the page is reloaded), kept encrypted in Redis
    for ``TOTP_ENROLMENT_SECONDS`` until a code proves the app read it."""
    redis, key = get_redis(), _pending_key(user)
    stored = redis.get(key)
    if stored is not None:
        return crypto.decrypt(stored.decode())
    secret = pyotp.random_base32()  # 160 bits from ``secrets``
    redis.set(key, crypto.encrypt(secret), ex=current_app.config["TOTP_ENROLMENT_SECONDS"])
    return secret


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=current_app.config["TOTP_ISSUER"])


def qr_data_uri(uri: str) -> str:
    """The QR code of ``uri`` as an SVG ``data:`` URI (allowed by the CSP's ``img-src 'self' data:``)."""
    import segno  # only the enrolment page draws one: a slow import no other process needs

    return segno.make(uri, error="m").svg_data_uri(scale=4, border=4, dark="#1f2328")


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand: ``ABCD EFGH …``."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _matching_step(secret: str, code: str) -> int | None:
    """The time step whose code ``code`` is (now, or ``DRIFT_STEPS`` around it), else None."""
    code = "".join(code.split())
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    now = int(clock.now().timestamp()) // STEP_SECONDS
    totp = pyotp.TOTP(secret)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accept(user: User, secret: str, code: str, remote_addr: str | None) -> int:
    throttle.check(user.email, remote_addr)
    step = _matching_step(secret, code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        throttle.record_failure(user.email, remote_addr)
        raise WrongCode()
    return step


def enrol(user: User, code: str, remote_addr: str | None) -> User:
    """Keep the pending secret once ``code`` shows the app holds it; raises ``WrongCode``/``LoginThrottled``.

    Returns the user as loaded under the write lock.
    """
    secret = pending_secret(user)
    step = _accept(user, secret, code, remote_addr)
    begin_write()
    user = db.session.get(User, user.id)
    user.totp_secret = crypto.encrypt(secret)
    user.totp_last_step = step
    get_redis().delete(_pending_key(user))
    throttle.forget(user.email, remote_addr)
    return user


def verify(user: User, code: str, remote_addr: str | None) -> User:
    """Accept ``code`` as the second factor of a login; raises ``WrongCode``/``LoginThrottled``.

    The step is checked again under the write lock: two logins racing with one code, one wins.
    """
    step = _accept(user, crypto.decrypt(user.totp_secret), code, remote_addr)
    begin_write()
    user = db.session.get(User, user.id)
    if user.totp_last_step is not None and step <= user.totp_last_step:
        db.session.rollback()
        raise WrongCode()
    user.totp_last_step = step
    throttle.forget(user.email, remote_addr)
    return user


def reset(user: User) -> None:
    """Forget the account's authenticator (a lost phone): it enrols again at the next login."""
    user.totp_secret = None
    user.totp_last_step = None
