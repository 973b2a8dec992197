"""The public booking form's bot check, with no third-party service.

Each rendering of the form carries a signed token saying when it was made (``form_token``). A
post is accepted only with a valid token at least ``BOOKING_FORM_MIN_SECONDS`` old (a person
reads the page and types; a bot posts at once), at most a few hours old, used once, and with the
honeypot field left empty (it is hidden from people, and bots fill every field).
"""
import logging
import secrets
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from redis.exceptions import RedisError

from app import clock
from app.queue import get_redis

log = logging.getLogger(__name__)

#: A form older than this is refused (the page is reloaded and sent again).
FORM_MAX_AGE = timedelta(hours=6)


class NotAccepted(Exception):
    """The post failed the check; ``too_fast`` when it only came too soon (say so to a person)."""

    def __init__(self, too_fast: bool = False):
        super().__init__("too fast" if too_fast else "refused")
        self.too_fast = too_fast


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="booking-form")


def form_token() -> str:
    """A fresh token for a rendering of the form: when it was made, and a nonce."""
    return _serializer().dumps({"t": clock.now().timestamp(), "n": secrets.token_urlsafe(12)})


def check(token: str | None, honeypot: str | None) -> None:
    """Accept a post of the form once; raise ``NotAccepted`` otherwise."""
    if honeypot:
        raise NotAccepted()
    try:
        data = _serializer().loads(token or "")
        age = clock.now().timestamp() - float(data["t"])
        nonce = str(data["n"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotAccepted() from None
    if age < current_app.config["BOOKING_FORM_MIN_SECONDS"]:
        raise NotAccepted(too_fast=True)
    if age > FORM_MAX_AGE.total_seconds():
        raise NotAccepted()
    try:
        first = get_redis().set(f"booking-form:{nonce}", 1, nx=True, ex=int(FORM_MAX_AGE.total_seconds()) + 60)
    except RedisError as exc:  # a Redis outage must not close the booking form: the other checks hold
        log.warning("booking form token not recorded, Redis unavailable: %s", exc)
        return
    if not first:
        raise NotAccepted()  # the same rendering posted twice
