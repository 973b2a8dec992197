"""The host's alerts about a slot's meeting: each cause once per slot."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.mail.outbox import queue_email
from app.models import Delivery, Meeting, MeetingFailure, Slot


def alert_host(slot: Slot, failure: MeetingFailure) -> Delivery | None:
    """Email the host at once that a slot has no working URL and why, once per slot and cause.

    The issue job, the pre-flight and the send-time check each find the same trouble; the host
    hears of it once. A new cause alerts again, and so does the same cause once the meeting was
    issued since (the trouble came back). Returns the email, or None when already sent.
    """
    meeting = db.session.scalar(select(Meeting).where(Meeting.slot_id == slot.id))
    since = int(meeting.issued_at.timestamp()) if meeting is not None and meeting.issued_at else 0
    return alert_once("meeting_trouble", f"meeting_trouble:{slot.id}:{failure.value}:{since}", slot,
                      {"failure": failure.value})


def alert_once(kind: str, key: str, slot: Slot, payload: dict) -> Delivery | None:
    """Queue the host email ``kind`` about ``slot`` unless one with ``key`` was written; None then."""
    host = slot.service.host
    if host.deleted_at is not None:  # a closed account has no address to write to
        return None
    if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)) is not None:
        return None
    try:
        with db.session.begin_nested():
            return queue_email(kind, to_email=host.email, to_name=host.display_name, locale=host.locale,
                               host_id=host.id, slot_id=slot.id, payload=payload, dedupe_key=key)
    except IntegrityError:  # another worker wrote the same alert at the same moment (PostgreSQL)
        return None
