"""Zoom webhook messages: payload builders, signing and delivery (zoom-facts §5).

The emulator's control API uses these to POST signed events at the app. Tests that drive the app
through a Flask test client instead of a live server can call :func:`signed_request` directly and
post the returned body and headers themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import datetime

import requests

from .state import Meeting, User, iso

USER_AGENT = "Zoom Marketplace/1.0a"
DELIVERY_TIMEOUT = 3  # §5: the endpoint must answer within 3 seconds


def signature(secret_token: str, timestamp: str, raw_body: bytes) -> str:
    """Return ``x-zm-signature``: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}``."""
    message = b"v0:" + timestamp.encode() + b":" + raw_body
    return "v0=" + hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()


def url_validation_answer(secret_token: str, plain_token: str) -> dict:
    """The body an app must return to ``endpoint.url_validation`` (§5 CRC)."""
    encrypted = hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


def url_validation_payload() -> dict:
    """``endpoint.url_validation`` payload: ``{plainToken}``."""
    return {"plainToken": secrets.token_urlsafe(16)}


def app_deauthorized_payload(user: User, client_id: str, when: datetime) -> dict:
    """``app_deauthorized`` payload (marketplace webhooks spec; ``event_ts`` a number there)."""
    return {
        "account_id": user.account_id,
        "user_id": user.id,
        "signature": secrets.token_hex(32),
        "deauthorization_time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "client_id": client_id,
        "event_ts": int(when.timestamp() * 1000),
    }


def meeting_deleted_payload(meeting: Meeting, host: User) -> dict:
    """``meeting.deleted`` payload as typed in zoom/rivet-javascript (§5)."""
    return {
        "account_id": host.account_id,
        "operator": host.email,
        "operator_id": host.id,
        "object": {**meeting_object(meeting, host), "id": meeting.id},  # a number in this event
    }


def meeting_object(meeting: Meeting, host: User) -> dict:
    """``payload.object`` of the meeting events: ``id`` is a string there (attendance §3), unlike the REST body."""
    return {
        "id": str(meeting.id),
        "uuid": meeting.uuid,
        "host_id": host.id,
        "topic": meeting.topic,
        "type": meeting.type,
        "start_time": iso(meeting.start_time),
        "duration": meeting.duration,
        "timezone": meeting.timezone,
    }


def new_participant(user_name: str, *, email: str = "", registrant_id: str = "", zoom_user_id: str = "") -> dict:
    """One stay of a person in a meeting, as Zoom identifies it (attendance §3).

    ``user_id`` and ``participant_uuid`` are new for every stay (a rejoin gets new ones);
    ``id`` is the Zoom user id of a signed-in user ("" for guests); ``email`` is "" for external
    guests unless they registered; ``registrant_id`` only with registration.
    """
    return {
        "user_id": str(secrets.randbelow(9 * 10**7) + 10**7),
        "user_name": user_name,
        "id": zoom_user_id,
        "participant_uuid": str(uuid.uuid4()).upper(),
        "email": email,
        "registrant_id": registrant_id,
    }


def participant_payload(meeting: Meeting, host: User, account_id: str, participant: dict, *, joined: bool,
                        at: datetime, leave_reason: str = "left the meeting") -> dict:
    """``meeting.participant_joined`` (``joined``) or ``meeting.participant_left`` payload (rivet-javascript types).

    :param participant: from :func:`new_participant` (the same dict for a stay's joined and left).
    """
    person = {"user_id": participant["user_id"], "user_name": participant["user_name"], "id": participant["id"],
              "participant_uuid": participant["participant_uuid"], "email": participant["email"]}
    if participant.get("registrant_id"):
        person["registrant_id"] = participant["registrant_id"]
    if joined:
        person["join_time"] = iso(at)
    else:
        person["leave_time"] = iso(at)
        person["leave_reason"] = leave_reason
    return {"account_id": account_id, "object": {**meeting_object(meeting, host), "participant": person}}


def meeting_ended_payload(meeting: Meeting, host: User, started: datetime, ended: datetime) -> dict:
    """``meeting.ended`` payload: the meeting's fields plus ``end_time`` (its actual ``start_time``)."""
    return {"account_id": host.account_id,
            "object": {**meeting_object(meeting, host), "start_time": iso(started), "end_time": iso(ended)}}


def meeting_started_payload(meeting: Meeting, host: User, started: datetime) -> dict:
    """``meeting.started`` payload."""
    return {"account_id": host.account_id, "object": {**meeting_object(meeting, host), "start_time": iso(started)}}


def signed_request(event: str, payload: dict, secret_token: str, when: datetime, *,
                   timestamp: str | None = None, corrupt_signature: bool = False) -> tuple[bytes, dict]:
    """Build the raw body and headers Zoom would POST for ``event``.

    :param when: when the event happened; gives ``event_ts`` (ms) and the default timestamp (s).
    :param timestamp: override ``x-zm-request-timestamp`` (e.g. a stale one for skew tests).
    :param corrupt_signature: flip the signature so that verification must fail.
    """
    raw_body = json.dumps(
        {"event": event, "event_ts": int(when.timestamp() * 1000), "payload": payload},
        separators=(",", ":"),
    ).encode()
    timestamp = timestamp if timestamp is not None else str(int(when.timestamp()))
    signed = signature(secret_token, timestamp, raw_body)
    if corrupt_signature:
        signed = signed[:-1] + ("0" if signed[-1] != "0" else "1")
    headers = {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": signed,
        "x-zm-request-id": str(uuid.uuid4()),
        "User-Agent": USER_AGENT,
    }
    return raw_body, headers


def deliver(target_url: str, raw_body: bytes, headers: dict, session: requests.Session | None = None) -> dict:
    """POST a signed event; report the app's status and body (or the delivery error) and how long
    the answer took (``seconds``: Zoom wants it within 3 s)."""
    started = time.perf_counter()
    try:
        response = (session or requests).post(target_url, data=raw_body, headers=headers, timeout=DELIVERY_TIMEOUT)
    except requests.RequestException as exc:
        # §5: Zoom counts a late or failed answer as a failed delivery
        return {"status_code": None, "body": None, "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - started}
    return {"status_code": response.status_code, "body": response.text, "error": None,
            "seconds": time.perf_counter() - started}
