"""Zoom's participant webhooks, read into the provider-neutral events of ``meetings.attendance``.

``meeting.participant_joined`` / ``meeting.participant_left`` carry ``payload.object`` with the
meeting's ``id`` (a string), its run's ``uuid``, ``host_id`` and a ``participant`` with
``user_id``, ``user_name``, ``id`` (the Zoom user id of signed-in users), ``participant_uuid``,
``join_time`` / ``leave_time``, ``email`` ("" for external guests unless they registered) and
``registrant_id`` (registration only); ``meeting.ended`` adds ``end_time`` to the meeting
(zoom-registrants-attendance §3). ``user_id`` and ``participant_uuid`` change when a person
rejoins; ``registrant_id`` is the only stable one. Anything missing or malformed is read as
absent, never as an error: Zoom does not retry a 4xx, and an event we cannot read is dropped.
"""
from __future__ import annotations

from datetime import datetime, timezone

from app.meetings.attendance import MeetingEnded, ParticipantEvent

PROVIDER = "zoom"
PARTICIPANT_EVENTS = {"meeting.participant_joined": "joined", "meeting.participant_left": "left"}
ENDED_EVENT = "meeting.ended"


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def _moment(value) -> datetime | None:
    """Zoom's ``2026-06-20T10:00:00Z`` as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _event_time(event_ts) -> datetime | None:
    """``event_ts`` (milliseconds) as a moment: the fallback when the payload has no time."""
    if isinstance(event_ts, bool) or not isinstance(event_ts, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(event_ts / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def participant_event(kind: str, payload: dict, event_ts=None) -> ParticipantEvent | None:
    """A joined/left webhook as a ``ParticipantEvent``; None when it names no meeting or person."""
    meeting = payload.get("object") if isinstance(payload, dict) else None
    person = meeting.get("participant") if isinstance(meeting, dict) else None
    if not isinstance(person, dict):
        return None
    meeting_id, instance = _text(meeting.get("id")), _text(meeting.get("uuid"))
    # A stay is one participant_uuid; older payloads without it have user_id (per meeting run).
    key = _text(person.get("participant_uuid")) or _text(person.get("user_id"))
    happened = PARTICIPANT_EVENTS[kind]
    at = _moment(person.get("join_time" if happened == "joined" else "leave_time")) or _event_time(event_ts)
    if not meeting_id or not key or at is None:
        return None
    host_id = _text(meeting.get("host_id"))
    is_host = bool(host_id) and host_id in (_text(person.get("id")), _text(person.get("user_id")))
    return ParticipantEvent(provider=PROVIDER, meeting_external_id=meeting_id, instance=instance or meeting_id,
                            participant_key=key, kind=happened, at=at,
                            registrant_id=_text(person.get("registrant_id")), email=_text(person.get("email")),
                            name=_text(person.get("user_name")), is_host=is_host)


def meeting_ended(payload: dict, event_ts=None) -> MeetingEnded | None:
    """A ``meeting.ended`` webhook as a ``MeetingEnded``; None when it names no meeting."""
    meeting = payload.get("object") if isinstance(payload, dict) else None
    if not isinstance(meeting, dict):
        return None
    meeting_id = _text(meeting.get("id"))
    ended = _moment(meeting.get("end_time")) or _event_time(event_ts)
    if not meeting_id or ended is None:
        return None
    return MeetingEnded(provider=PROVIDER, meeting_external_id=meeting_id,
                        instance=_text(meeting.get("uuid")) or meeting_id,
                        started_at=_moment(meeting.get("start_time")), ended_at=ended)
