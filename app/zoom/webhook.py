"""Zoom webhook verification (zoom-facts §5).

The signature is ``v0=`` + hex HMAC-SHA256(secret token, ``"v0:" + timestamp + ":" + raw body``),
computed over the raw request bytes (re-serialised JSON can differ) and compared in constant time.
Zoom documents no timestamp tolerance; we refuse anything older or newer than 5 minutes.
"""
import hashlib
import hmac

TOLERANCE_SECONDS = 300


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
    except ValueError:
        return False
    if age > TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, timestamp, raw_body), given)


def url_validation_answer(secret: str, plain_token: str) -> dict:
    """The answer to ``endpoint.url_validation`` (Zoom revalidates every 72 h)."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
