"""Zoom behind the meetings wing's ``VideoTool`` interface (zoom-facts §3–7)."""
from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta

from app import clock
from app.meetings.provider import IssuedMeeting, MeetingSpec, VideoTool
from app.models import ZoomConnection
from app.zoom import link
from app.zoom.client import Meeting, next_utc_midnight

#: Zoom's free (Basic) plan cuts meetings at 40 minutes, whoever is in them (zoom-facts §6).
BASIC_LIMIT_MINUTES = 40
#: The plan read from Zoom is trusted this long outside a create (each create reads it again).
PLAN_FRESH_FOR = timedelta(hours=1)


def _password() -> str:
    # Zoom passcodes: at most 10 characters of [A-Za-z0-9@-_*] (zoom-facts §3).
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))


def _marker(spec: MeetingSpec) -> str:
    return f"[ref:{spec.issue_key}]"


def _when(spec: MeetingSpec) -> dict:
    # UTC with ``Z`` plus the host's time zone, never mixed (zoom-facts §7).
    return {"start_time": spec.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": spec.duration_minutes,
            "timezone": spec.timezone}


def meeting_body(spec: MeetingSpec) -> dict:
    """The create request: the issue key goes in the agenda, where ``find`` looks for it."""
    return {
        "topic": spec.title, "type": 2, **_when(spec), "password": _password(), "agenda": _marker(spec),
        # join_before_host stays off: on a Basic plan the 40-minute clock starts with the first
        # participant, so early guests would burn it (zoom-facts §6).
        "settings": {"join_before_host": False, "waiting_room": False, "approval_type": 2,
                     "auto_recording": "none", "mute_upon_entry": False},
    }


def _issued(meeting: Meeting) -> IssuedMeeting:
    return IssuedMeeting(external_id=str(meeting.id), join_url=meeting.join_url, password=meeting.password)


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
        link.refresh_plan(link_id)  # it decides the 40-minute line, and can change any time
        return _issued(link.api_for(link_id).create_meeting(meeting_body(spec)))

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


tool = Zoom()
