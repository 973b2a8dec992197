"""Zoom webhook verification (zoom-facts §5).

The signature is ``v0=`` + hex HMAC-SHA256(secret token, ``"v0:" + timestamp + ":" + raw body``),
computed over the raw request bytes (re-serialised JSON can differ) and compared in constant time.
Zoom documents no timestamp tolerance; we refuse anything older or newer than 5 minutes.

Within that window a captured request could be sent again, so each verified request is
remembered (by its signature) until it can no longer pass the timestamp check, and a second
copy is answered without being processed (S6: Slack, Stripe and Svix do the same).
"""
import hashlib
import hmac

from app.queue import get_redis

TOLERANCE_SECONDS = 300
#: A signed request is valid from 5 minutes before to 5 minutes after its timestamp.
REPLAY_WINDOW_SECONDS = 2 * TOLERANCE_SECONDS


def signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    """The ``x-zm-signature`` Zoom would send for this body."""
    message = b"v0:" + timestamp.encode() + b":" + raw_body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def is_authentic(secret: str, timestamp: str | None, given: str | None, raw_body: bytes, now: float) -> bool:
    """True when the signature matches and the timestamp is fresh."""
    if not secret or not timestamp or not given:
        return False
    try:
        age = abs(now - int(timestamp))
    except (ValueError, OverflowError):
        return False
    if age > TOLERANCE_SECONDS:
        return False
    # As bytes: compare_digest refuses a str with non-ASCII characters (a header may carry any
    # byte; WSGI hands it over decoded as latin-1).
    return hmac.compare_digest(signature(secret, timestamp, raw_body).encode(), given.encode("latin-1"))


def url_validation_answer(secret: str, plain_token: str) -> dict:
    """The answer to ``endpoint.url_validation`` (Zoom revalidates every 72 h)."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


def _seen_key(given_signature: str) -> str:
    return "zoom-webhook:" + hashlib.sha256(given_signature.encode()).hexdigest()


def first_delivery(given_signature: str) -> bool:
    """Remember a verified request; False when the same signed request was seen before.

    The key is the signature, which covers the timestamp and the raw body: ``x-zm-request-id``
    is not signed, so an attacker replaying a request could change it at will.
    """
    return bool(get_redis().set(_seen_key(given_signature), 1, nx=True, ex=REPLAY_WINDOW_SECONDS))


def forget_delivery(given_signature: str) -> None:
    """Forget a request whose handling failed, so Zoom's retry of it is processed."""
    get_redis().delete(_seen_key(given_signature))
