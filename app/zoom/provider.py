"""Zoom behind the meetings wing's ``VideoTool`` interface (zoom-facts §3–7)."""
from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta

from app import clock
from app.meetings.provider import GuestLink, IssuedMeeting, MeetingSpec, VideoTool
from app.models import ZoomConnection
from app.models.zoom import PLAN_LICENSED
from app.zoom import link
from app.zoom.client import Meeting, next_utc_midnight

#: Zoom's free (Basic) plan cuts meetings at 40 minutes, whoever is in them (zoom-facts §6).
BASIC_LIMIT_MINUTES = 40
#: The plan read from Zoom is trusted this long outside a create (each create reads it again).
PLAN_FRESH_FOR = timedelta(hours=1)
#: Zoom's ``first_name`` of a registrant is at most 64 characters (registrants §2).
REGISTRANT_NAME_MAX = 64
#: Registration settings of a meeting with per-guest links (registrants §1): approved at once, and
#: Zoom emails nobody (our own emails carry the guest's link); one device per link, said explicitly
#: since Zoom's default is undocumented.
REGISTRATION_SETTINGS = {"approval_type": 0, "registrants_email_notification": False,
                         "registrants_confirmation_email": False, "allow_multiple_devices": False}


def _password() -> str:
    # Zoom passcodes: at most 10 characters of [A-Za-z0-9@-_*] (zoom-facts §3).
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))


def _marker(spec: MeetingSpec) -> str:
    return f"[ref:{spec.issue_key}]"


def _when(spec: MeetingSpec) -> dict:
    # UTC with ``Z`` plus the host's time zone, never mixed (zoom-facts §7).
    return {"start_time": spec.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": spec.duration_minutes,
            "timezone": spec.timezone}


def meeting_body(spec: MeetingSpec, *, registration: bool = False) -> dict:
    """The create request: the issue key goes in the agenda, where ``find`` looks for it.

    :param registration: each guest is registered (their own URL); only a Licensed host's meeting.
    """
    return {
        "topic": spec.title, "type": 2, **_when(spec), "password": _password(), "agenda": _marker(spec),
        # join_before_host stays off: on a Basic plan the 40-minute clock starts with the first
        # participant, so early guests would burn it (zoom-facts §6).
        "settings": {"join_before_host": False, "waiting_room": False, "approval_type": 2,
                     "auto_recording": "none", "mute_upon_entry": False,
                     **(REGISTRATION_SETTINGS if registration else {})},
    }


def _issued(meeting: Meeting) -> IssuedMeeting:
    return IssuedMeeting(external_id=str(meeting.id), join_url=meeting.join_url, password=meeting.password,
                         with_registrants=meeting.approval_type == 0)


def registrant_name(name: str, email: str) -> str:
    """The guest's name as Zoom's ``first_name`` (trimmed, at most 64 characters)."""
    return (" ".join(name.split()) or email.partition("@")[0])[:REGISTRANT_NAME_MAX]


class Zoom(VideoTool):
    key = "zoom"
    name = "Zoom"
    link_model = ZoomConnection
    settings_endpoint = "zoom.settings"

    def link_for(self, host_id: int) -> ZoomConnection | None:
        return link.connection_for(host_id)

    def grant_for(self, host_id: int) -> ZoomConnection | None:
        return link.grant_for(host_id)

    def create(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting:
        me = link.refresh_plan(link_id)  # it decides the 40-minute line and registration, and can change any time
        registration = spec.with_registrants and me.type == PLAN_LICENSED  # a downgraded host: the shared URL
        return _issued(link.api_for(link_id).create_meeting(meeting_body(spec, registration=registration)))

    def find(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting | None:
        api = link.api_for(link_id)
        found = [m for m in api.list_meetings() if _marker(spec) in (m.get("agenda") or "")]
        return _issued(api.get_meeting(found[0]["id"])) if found else None

    def get(self, link_id: int, external_id: str) -> IssuedMeeting:
        return _issued(link.api_for(link_id).get_meeting(int(external_id)))

    def update(self, link_id: int, external_id: str, spec: MeetingSpec) -> None:
        link.api_for(link_id).update_meeting(int(external_id), _when(spec))

    def delete(self, link_id: int, external_id: str) -> None:
        link.api_for(link_id).delete_meeting(int(external_id))

    def start_link(self, link_id: int, external_id: str) -> str:
        return link.api_for(link_id).get_meeting(int(external_id)).start_url

    def check_link(self, link_id: int) -> None:
        connection = link.connection_by_id(link_id)
        if clock.now() - connection.plan_checked_at >= PLAN_FRESH_FOR:
            link.refresh_plan(link_id)  # refreshes the token too when it is due
        else:
            link.access_token(link_id)  # the grant still works (refreshed when due)

    def cut_minutes(self, connection: ZoomConnection, participants: int) -> int | None:
        return BASIC_LIMIT_MINUTES if connection.is_basic else None

    def writes_left(self, link_id: int) -> int | None:
        return link.budget_left(link_id)

    def budget_resets_at(self) -> datetime:
        return next_utc_midnight()

    def record_write(self, link_id: int, *, exhausted: bool = False) -> None:
        link.record_write(link_id, exhausted=exhausted)

    def finish_off(self, host_id: int) -> bool:
        return link.finish_off(host_id)

    def supports_guest_links(self, connection: ZoomConnection | None) -> bool:
        """Registrants need a Licensed host (registrants §1: "The host must be a Licensed user type")."""
        return connection is not None and connection.is_active and connection.plan_type == PLAN_LICENSED

    def add_guest(self, link_id: int, external_id: str, name: str, email: str) -> GuestLink:
        found = link.api_for(link_id).add_registrant(int(external_id), registrant_name(name, email), email)
        return GuestLink(id=found.id, join_url=found.join_url)

    def find_guest(self, link_id: int, external_id: str, email: str) -> GuestLink | None:
        for item in link.api_for(link_id).registrants(int(external_id)):
            if str(item.get("email", "")).lower() == email.lower() and item.get("id") and item.get("join_url"):
                return GuestLink(id=str(item["id"]), join_url=str(item["join_url"]))
        return None

    def cancel_guest(self, link_id: int, external_id: str, guest_id: str, email: str = "") -> None:
        link.api_for(link_id).cancel_registrant(int(external_id), guest_id, email)


tool = Zoom()
