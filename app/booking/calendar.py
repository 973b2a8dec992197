"""「カレンダーに追加」: a guest's booking as a calendar entry, an .ics file or a Google Calendar link.

Both say the same: the service, its start and end, where (the stable ``/j/`` link of a Zoom
booking, the venue's address) and, in the details, the host's notes and the page of the booking
(with its cancel link). The .ics entry has the UID of the invitation the URL email attaches
(``app.meetings.emails.ics_for``), so adding both leaves one entry in a calendar, not two.
"""
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask_babel import gettext as _
from icalendar import Calendar, Event

from app import clock
from app.booking.booking import venue_of
from app.models import Booking
from app.urls import external_url

#: Google Calendar's "add an event" template URL (no account of ours, no script on our pages).
GOOGLE_TEMPLATE = "https://calendar.google.com/calendar/render"


@dataclass(frozen=True)
class CalendarEvent:
    """One booking as a calendar entry."""

    uid: str
    title: str
    starts_at: datetime
    ends_at: datetime
    location: str
    url: str
    details: str


def event_for(booking: Booking) -> CalendarEvent:
    """The calendar entry of a booking, in the language of the current request or email."""
    slot = booking.slot
    service = slot.service
    venue = venue_of(service)
    booked_url = external_url("booking.booked", public_id=service.public_id, token=booking.cancel_token)
    lines, location, url = [], "", booked_url
    if venue["venue"] in ("video_tool", "fixed_url"):
        url = location = external_url("booking.join", token=booking.join_token)
        lines.append(_("参加URL（開始時刻になったら開いてください）: %(url)s", url=url))
    elif venue["venue"] == "in_person":
        location = venue["venue_address"]
    if service.host_notes:
        lines += ["", service.host_notes, ""]
    lines.append(_("ホスト: %(name)s", name=service.host.display_name))
    lines.append(_("ご予約の確認・キャンセル: %(url)s", url=booked_url))
    return CalendarEvent(uid=f"slot-{slot.id}@booking.local", title=service.title, starts_at=slot.starts_at,
                         ends_at=slot.ends_at, location=location, url=url, details="\n".join(lines).strip())


def ics(booking: Booking) -> bytes:
    """The booking as an .ics file (one event, this guest's only)."""
    entry = event_for(booking)
    calendar = Calendar()
    calendar.add("prodid", "-//booking host dashboard//JA")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", entry.uid)
    event.add("summary", entry.title)
    event.add("dtstart", entry.starts_at)
    event.add("dtend", entry.ends_at)
    event.add("dtstamp", clock.now())
    if entry.location:
        event.add("location", entry.location)
    event.add("url", entry.url)
    event.add("description", entry.details)
    calendar.add_component(event)
    return calendar.to_ical()


def _google_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def google_url(booking: Booking) -> str:
    """A link that opens Google Calendar with the booking filled in, for the guest to save."""
    entry = event_for(booking)
    query = {"action": "TEMPLATE", "text": entry.title,
             "dates": f"{_google_time(entry.starts_at)}/{_google_time(entry.ends_at)}", "details": entry.details}
    if entry.location:
        query["location"] = entry.location
    return f"{GOOGLE_TEMPLATE}?{urlencode(query)}"


def links(booking: Booking, build=external_url) -> dict:
    """「カレンダーに追加」's two links as template context: ``ics_url`` and ``google_calendar_url``.

    Both are ours (the Google one redirects to ``google_url``): short enough for a text email, and
    the entry is written when the guest adds it, from the booking as it is then (a moved date).

    :param build: makes the URLs: absolute for emails (the default), ``url_for`` on pages.
    """
    where = {"public_id": booking.slot.service.public_id, "token": booking.cancel_token}
    return {"ics_url": build("booking.calendar_file", **where),
            "google_calendar_url": build("booking.google_calendar", **where)}
