"""Google Meet as a video tool: one event with a Meet conference on the host's primary calendar per slot.

The host is the event's organizer (their own calendar, their own Google account), so they join
as the meeting's owner; guests are never attendees (no address goes to Google, Google sends no
invitation), they get the Meet link in our emails and "ask to join" (google-meet-facts §3).
"""
from __future__ import annotations

from collections.abc import Callable
import time

from app.extensions import db
from app.google import link as google_link
from app.google.client import CalendarApi, Event, event_id, new_create_request, rfc3339
from app.meetings.provider import (IssuedMeeting, MeetingGone, MeetingSpec, ProviderAuthError, ProviderRetryable,
                                   VideoTool)
from app.models import GoogleConnection, LinkBreak

#: Google makes the Meet conference asynchronously (``pending``, facts §3): re-read the event after
#: these waits (seconds) before leaving it to the wing's next attempt. Short: a job waits meanwhile.
CONFERENCE_WAITS = (0.3, 0.7, 1.5)
#: When the conference is still not there after the waits, the next attempt comes this much later.
CONFERENCE_RETRY_AFTER = 30
#: A free personal account ends calls of three or more people at 60 minutes (facts §6).
FREE_GROUP_CALL_MINUTES = 60


class GoogleMeet(VideoTool):
    key = "google_meet"
    name = "Google Meet"
    link_model = GoogleConnection
    settings_endpoint = "google.settings"

    # reading the link
    def link_for(self, host_id: int):
        return google_link.link_for(host_id)

    def grant_for(self, host_id: int):
        return google_link.grant_for(host_id)

    # meetings
    def create(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting:
        """Insert the event under our id (a repeat of an unanswered insert finds the first, 409 → get),
        then wait briefly for its Meet conference. :raises MeetingGone: an event under this issue key
        exists but was deleted in Google Calendar (a new issue key is needed)."""
        event = self._call(link_id, lambda api: api.insert_event(spec))
        if event.cancelled:
            raise MeetingGone("events.insert: the event of this issue key was deleted", code="cancelled")
        return self._issued(self._with_conference(link_id, event))

    def find(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting | None:
        """The event an earlier create of this issue key made, if Google has it and it is not cancelled."""
        try:
            event = self._call(link_id, lambda api: api.get_event(event_id(spec)))
        except MeetingGone:
            return None
        if event.cancelled:
            return None
        return self._issued(self._with_conference(link_id, event))

    def get(self, link_id: int, external_id: str) -> IssuedMeeting:
        """The event now. :raises MeetingGone: cancelled (the host deleted it in Google Calendar), gone,
        or its Meet conference was removed from it."""
        event = self._call(link_id, lambda api: api.get_event(external_id))
        if event.cancelled:
            raise MeetingGone("events.get: the event is cancelled", code="cancelled")
        if not event.join_url:
            if event.conference_pending:
                raise ProviderRetryable("events.get: conference pending", retry_after=CONFERENCE_RETRY_AFTER)
            raise MeetingGone("events.get: the event has no Meet conference", code="noConference")
        return self._issued(event)

    def update(self, link_id: int, external_id: str, spec: MeetingSpec) -> None:
        """Patch only ``start``/``end``: the conference is left alone, so the Meet link stays (facts §3)."""
        body = {"start": {"dateTime": rfc3339(spec.starts_at, spec.timezone), "timeZone": spec.timezone},
                "end": {"dateTime": rfc3339(spec.ends_at, spec.timezone), "timeZone": spec.timezone}}
        event = self._call(link_id, lambda api: api.patch_event(external_id, body))
        if event.cancelled:
            raise MeetingGone("events.patch: the event is cancelled", code="cancelled")

    def delete(self, link_id: int, external_id: str) -> None:
        """Delete the event (no email to anyone); already gone (404, 410) counts as deleted."""
        self._call(link_id, lambda api: api.delete_event(external_id))

    def start_link(self, link_id: int, external_id: str) -> str:
        """The event's Meet link, read now: the host opens it signed in to Google as the organizer."""
        return self.get(link_id, external_id).join_url

    # the link itself
    def check_link(self, link_id: int) -> None:
        """The grant still works (refreshed when due) and still holds the calendar permission."""
        google_link.access_token(link_id)
        link = db.session.get(GoogleConnection, link_id)
        if link is not None and link.scope and google_link.CALENDAR_SCOPE not in link.scope.split():
            google_link.mark_broken(link_id, LinkBreak.SCOPE_MISSING)
            raise ProviderAuthError("the grant lacks the calendar scope", code="insufficientPermissions")

    def cut_minutes(self, link, participants: int) -> int | None:
        """A free personal account (no ``hd``) ends calls of 3 or more people at 60 minutes.

        Google Meet Help, as quoted by the press on 2021-07-13/14 (facts §6, S1): "Calls with 3 or
        more participants for up to 60 minutes … Otherwise, the call will end at 60 minutes." For
        one-to-one calls the same text gave 24 hours, but a later (undated) source says 60 minutes
        and Google's current help text was not found: uncertain, so no cut is claimed for 2 people.
        Workspace accounts: 24 hours, never reached by a lesson.
        """
        if link is None or link.is_workspace or participants < 3:
            return None
        return FREE_GROUP_CALL_MINUTES

    def finish_off(self, host_id: int) -> bool:
        return google_link.finish_off(host_id)

    def supports_guest_links(self, link) -> bool:
        """No: Meet has no registrants, and guests are never attendees of the event (facts §3), so
        every guest joins by the event's one Meet link ("ask to join")."""
        return False

    # helpers
    @staticmethod
    def _call(link_id: int, call: Callable[[CalendarApi], Event | None]):
        """Run one Calendar call as the host; a grant without the calendar permission needs a relink."""
        try:
            return call(google_link.api_for(link_id))
        except ProviderAuthError as exc:
            if exc.code == "insufficientPermissions":
                google_link.mark_broken(link_id, LinkBreak.SCOPE_MISSING)
            raise

    def _with_conference(self, link_id: int, event: Event) -> Event:
        """The event once its Meet conference exists: re-read while ``pending``; after a ``failure``
        (or no conference at all) ask once more with a fresh request id (Google ignores a repeated one).

        :raises ProviderRetryable: no Meet link yet; the wing's next attempt finds the event again.
        """
        asked_again = False
        waits = iter(CONFERENCE_WAITS)
        while not event.join_url:
            if event.cancelled:
                raise MeetingGone("the event was cancelled before its conference was made", code="cancelled")
            if not event.conference_pending:
                if asked_again:
                    break
                asked_again = True
                body = {"conferenceData": {"createRequest": new_create_request()}}
                event = self._call(link_id, lambda api, eid=event.id: api.patch_event(eid, body))
                continue
            wait = next(waits, None)
            if wait is None:
                break
            time.sleep(wait)
            event = self._call(link_id, lambda api, eid=event.id: api.get_event(eid))
        if not event.join_url:
            state = event.conference_status or "none"
            raise ProviderRetryable(f"Meet conference {state}", retry_after=CONFERENCE_RETRY_AFTER, code=state)
        return event

    @staticmethod
    def _issued(event: Event) -> IssuedMeeting:
        return IssuedMeeting(external_id=event.id, join_url=event.join_url, host_url=event.html_link)


tool = GoogleMeet()
