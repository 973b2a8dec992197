"""Calendar events with Google Meet conferences, as Calendar API v3 keeps them (facts §3).

:class:`CalendarStore` holds every user's primary calendar and the rules the product leans on:
client-chosen base32hex ids and 409 ``duplicate``, ``conferenceDataVersion`` 0 ignoring conference
data, ``createRequest`` → a Meet link whose status may stay ``pending`` for a few polls or end in
``failure``, PATCH keeping the conference (same link), DELETE leaving a ``cancelled`` event that
``get`` still returns, then 410 ``deleted``.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import api_error, deleted, not_found

if TYPE_CHECKING:
    from .identity import User
    from .state import EmulatorState

_EVENT_ID_RE = re.compile(r"[0-9a-v]{5,1024}")  # base32hex, lowercase (facts §3)
_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
MEET_ICON = "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png"
#: Body fields stored and echoed as sent (beside the ones with rules of their own).
ECHOED_FIELDS = ("location", "colorId", "transparency", "visibility", "reminders", "extendedProperties",
                 "guestsCanInviteOthers", "guestsCanModify", "guestsCanSeeOtherGuests", "source", "attendees")
SEND_UPDATES = ("all", "externalOnly", "none")


def rfc3339(moment: datetime) -> str:
    """Google's timestamp style: UTC, milliseconds, ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _meet_code() -> str:
    """A Meet code in the ``abc-defg-hij`` shape."""
    letters = string.ascii_lowercase
    return "-".join("".join(secrets.choice(letters) for _ in range(n)) for n in (3, 4, 3))


@dataclass
class Conference:
    """A Meet conference attached to an event; ``status`` is the createRequest's statusCode."""

    request_id: str
    code: str
    status: str  # pending | success | failure
    polls_left: int  # events.get answers still to show ``pending``
    with_phone: bool

    def as_google(self) -> dict:
        """``conferenceData`` as the API returns it: entry points only once ``success`` (§3)."""
        data = {"createRequest": {"requestId": self.request_id,
                                  "conferenceSolutionKey": {"type": "hangoutsMeet"},
                                  "status": {"statusCode": self.status}}}
        if self.status != "success":
            return data
        uri = f"https://meet.google.com/{self.code}"
        entry_points = [{"entryPointType": "video", "uri": uri, "label": uri.removeprefix("https://")}]
        if self.with_phone:
            digits = str(int(hashlib.sha256(self.code.encode()).hexdigest(), 16))
            pin = digits[:9]
            entry_points += [
                {"entryPointType": "phone", "uri": f"tel:+1-{digits[9:12]}-{digits[12:15]}-{digits[15:19]}",
                 "label": f"+1 {digits[9:12]}-{digits[12:15]}-{digits[15:19]}", "pin": pin, "regionCode": "US"},
                {"entryPointType": "more", "uri": f"https://tel.meet/{self.code}?pin={pin}", "pin": pin},
            ]
        data.update(entryPoints=entry_points,
                    conferenceSolution={"key": {"type": "hangoutsMeet"}, "name": "Google Meet", "iconUri": MEET_ICON},
                    conferenceId=self.code)
        return data


@dataclass
class Event:
    """One event on a user's primary calendar."""

    id: str
    owner: str
    start: dict
    end: dict
    created: datetime
    updated: datetime
    summary: str | None = None
    description: str | None = None
    status: str = "confirmed"
    sequence: int = 0
    conference: Conference | None = None
    echoed: dict = field(default_factory=dict)
    send_updates: list[str | None] = field(default_factory=list)  # sendUpdates of every write, for tests

    @property
    def etag(self) -> str:
        """Changes with every write, as Google's does."""
        return f'"{int(self.updated.timestamp() * 1000) * 1000 + self.sequence}"'

    def as_google(self) -> dict:
        """The Event resource (fields per the discovery document's ``Event`` schema)."""
        organizer = {"email": self.owner, "self": True}
        body = {
            "kind": "calendar#event", "etag": self.etag, "id": self.id, "status": self.status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={self.id}",
            "created": rfc3339(self.created), "updated": rfc3339(self.updated),
        }
        for name in ("summary", "description"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        body.update(creator=dict(organizer), organizer=organizer, start=copy.deepcopy(self.start),
                    end=copy.deepcopy(self.end), iCalUID=f"{self.id}@google.com", sequence=self.sequence)
        body.update(copy.deepcopy(self.echoed))
        body.setdefault("reminders", {"useDefault": True})
        if self.conference is not None:
            data = self.conference.as_google()
            if self.conference.status == "success":
                body["hangoutLink"] = f"https://meet.google.com/{self.conference.code}"
            body["conferenceData"] = data
        body["eventType"] = "default"
        return body


def _invalid(message: str) -> Exception:
    return api_error(400, "invalid", message)


def _event_time(value: object, name: str) -> dict:
    """Check ``start``/``end``: a ``date`` or a ``dateTime`` whose offset may only be left out with a ``timeZone``."""
    if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
        raise api_error(400, "required", f"Missing {name} time.")
    stamp = value.get("dateTime")
    if stamp is not None:
        if not isinstance(stamp, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?",
                                                          stamp):
            raise _invalid("Invalid value for: Invalid format: \"%s\"" % stamp)
        zone_name = value.get("timeZone")
        zone = None
        if zone_name is not None:
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError, TypeError):
                raise api_error(400, "invalid", f"Invalid time zone definition for {name} time.") from None
        if not re.search(r"(Z|[+-]\d\d:\d\d)$", stamp):
            if zone is None:
                raise api_error(400, "required", f"Missing time zone definition for {name} time.")
            # Google answers with the offset filled in: "2026-07-01T10:00:00+09:00" beside the timeZone
            local = datetime.fromisoformat(stamp).replace(tzinfo=zone)
            value = {**value, "dateTime": local.isoformat(timespec="seconds")}
    return {key: value[key] for key in ("date", "dateTime", "timeZone") if key in value}


class CalendarStore:
    """Every user's primary calendar, the conference modes, guarded by the emulator's lock."""

    def __init__(self, state: EmulatorState):
        self.state = state
        self.events: dict[str, dict[str, Event]] = {}  # owner email → id → event
        self.pending_polls = 0  # >0: new conferences answer ``pending`` to this many gets first
        self.failure = False  # new conferences end in ``failure``

    def _new_conference(self, owner: User, request: object) -> Conference:
        if not isinstance(request, dict) or not request.get("requestId"):
            raise _invalid("Invalid conference create request.")
        kind = (request.get("conferenceSolutionKey") or {}).get("type")
        if kind != "hangoutsMeet":
            raise _invalid("Invalid conference type value.")
        status = "failure" if self.failure else ("pending" if self.pending_polls else "success")
        return Conference(request_id=str(request["requestId"]), code=_meet_code(), status=status,
                          polls_left=self.pending_polls, with_phone=owner.hd is not None)

    def _conference_from(self, owner: User, body: dict, version: int, current: Conference | None) -> Conference | None:
        """Apply ``conferenceData`` of a write: ignored at version 0; a repeated requestId changes nothing."""
        if version < 1 or not isinstance(body.get("conferenceData"), dict):
            return current
        request = body["conferenceData"].get("createRequest")
        if request is None:
            return current
        if current is not None and isinstance(request, dict) and request.get("requestId") == current.request_id:
            return current  # §3: "If an ID provided is the same as for the previous request, the request is ignored"
        return self._new_conference(owner, request)

    def insert(self, owner: User, body: object, *, version: int, send_updates: str | None) -> Event:
        """``events.insert``: validate, then store; a client id already used → 409 ``duplicate``."""
        if not isinstance(body, dict):
            raise api_error(400, "parseError", "Parse Error")
        start, end = _event_time(body.get("start"), "start"), _event_time(body.get("end"), "end")
        with self.state.lock:
            calendar = self.events.setdefault(owner.email, {})
            event_id = body.get("id")
            if event_id is None:
                event_id = "".join(secrets.choice(_BASE32HEX) for _ in range(26))
            elif not isinstance(event_id, str) or not _EVENT_ID_RE.fullmatch(event_id):
                raise _invalid("Invalid resource id value.")
            elif event_id in calendar:
                raise api_error(409, "duplicate", "The requested identifier already exists.")
            now = self.state.now()
            event = Event(id=event_id, owner=owner.email, start=start, end=end, created=now, updated=now,
                          summary=body.get("summary"), description=body.get("description"),
                          echoed={name: copy.deepcopy(body[name]) for name in ECHOED_FIELDS if name in body},
                          send_updates=[send_updates])
            event.conference = self._conference_from(owner, body, version, None)
            calendar[event_id] = event
            return event

    def find(self, owner: User, event_id: str) -> Event:
        """The stored event, cancelled ones included; 404 ``notFound`` if never created."""
        with self.state.lock:
            event = self.events.get(owner.email, {}).get(event_id)
            if event is None:
                raise not_found()
            return event

    def get(self, owner: User, event_id: str) -> Event:
        """``events.get``: cancelled events are still returned (§3); each get is one poll of a pending conference."""
        with self.state.lock:
            event = self.find(owner, event_id)
            conference = event.conference
            if conference is not None and conference.status == "pending":
                if conference.polls_left > 0:
                    conference.polls_left -= 1
                else:
                    conference.status = "success"
            return event

    def patch(self, owner: User, event_id: str, body: object, *, version: int, send_updates: str | None) -> Event:
        """``events.patch``: merge the given fields; the conference (and so the link) stays (§3)."""
        if not isinstance(body, dict):
            raise api_error(400, "parseError", "Parse Error")
        with self.state.lock:
            event = self.find(owner, event_id)
            if "id" in body and body["id"] != event.id:
                raise _invalid("Invalid resource id value.")
            times = {name: _event_time(body[name], name) for name in ("start", "end") if name in body}
            if any(value != getattr(event, name) for name, value in times.items()):
                event.sequence += 1
            for name, value in times.items():
                setattr(event, name, value)
            for name in ("summary", "description"):
                if name in body:
                    setattr(event, name, body[name])
            if body.get("status") in ("confirmed", "tentative", "cancelled"):
                event.status = body["status"]
            for name in ECHOED_FIELDS:
                if name in body:
                    event.echoed[name] = copy.deepcopy(body[name])
            event.conference = self._conference_from(owner, body, version, event.conference)
            event.send_updates.append(send_updates)
            event.updated = self.state.now()
            return event

    def delete(self, owner: User, event_id: str, *, send_updates: str | None = None) -> Event:
        """``events.delete``: the event turns ``cancelled``; deleting it again → 410 ``deleted`` (§3)."""
        with self.state.lock:
            event = self.find(owner, event_id)
            if event.status == "cancelled":
                raise deleted()
            event.status = "cancelled"
            event.send_updates.append(send_updates)
            event.updated = self.state.now()
            return event

    def cancel_out_of_band(self, email: str, event_id: str) -> Event:
        """Control API: the host deleted the event in Google Calendar (our app was not told)."""
        with self.state.lock:
            event = self.events[email][event_id]
            event.status = "cancelled"
            event.updated = self.state.now()
            return event

    def records(self, email: str) -> list[dict]:
        """Control API: every event of ``email``, cancelled ones included, oldest first, without polling."""
        with self.state.lock:
            events = sorted(self.events.get(email, {}).values(), key=lambda event: event.created)
            return [{**event.as_google(), "sendUpdates": list(event.send_updates)} for event in events]
