"""The guest's lesson page (``/j/<token>``): what the page shows at a given moment.

Reading only: the page is opened by mail scanners too, so nothing here writes. Pressing 「参加する」
(``/j/<token>/go``) resolves the slot's *current* URL with ``go_url`` (a re-issued meeting included;
the guest's own URL when the meeting gives per-guest links, registering them then if it has not
been done) and records ``bookings.join_opened_at`` the first time (``record_opened``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import clock
from app.meetings import guest_links, issuing, timing, tools
from app.models import Booking, MeetingStatus, Venue

#: The lesson's phases, in time order ("cancelled" stands outside time).
CANCELLED, BEFORE, OPEN, LIVE, ENDED = "cancelled", "before", "open", "live", "ended"


def current_join_url(booking: Booking) -> str | None:
    """The URL 「参加する」 leads to now: the host's fixed URL, or the slot's issued meeting's; None while
    there is none (or the booking/date is cancelled)."""
    service = booking.slot.service
    if not booking.is_confirmed or not booking.slot.is_open:
        return None
    if service.venue == Venue.FIXED_URL:
        return service.meeting_url or None
    meeting = issuing.meeting_for(booking.slot_id)
    if meeting is not None and meeting.join_url and meeting.status == MeetingStatus.ISSUED:
        # Per-guest links: the guest's own URL once on record; until then the shared one (it leads
        # to the tool's registration page), which ``go_url`` replaces when the guest presses.
        return guest_links.own_url(booking, meeting) or meeting.join_url
    return None


def go_url(booking: Booking) -> str | None:
    """Where 「参加する」 leads: ``current_join_url``, except that a guest of a meeting with per-guest
    links who is not registered yet is registered now (one try; failing that, the shared URL, logged)."""
    url = current_join_url(booking)
    if url is None or booking.slot.service.venue == Venue.FIXED_URL:
        return url
    return guest_links.ensure(booking) or current_join_url(booking)


def opens_at(booking: Booking) -> datetime:
    """When 「参加する」 becomes active: the host's ``join_opens_minutes`` before the start."""
    minutes = booking.slot.service.join_opens_minutes
    return booking.slot.starts_at - timedelta(minutes=10 if minutes is None else minutes)


def phase_of(booking: Booking, now: datetime | None = None) -> str:
    now = now or clock.now()
    slot = booking.slot
    if not booking.is_confirmed or not slot.is_open:
        return CANCELLED
    if now >= slot.ends_at:
        return ENDED
    if now >= slot.starts_at:
        return LIVE
    if now >= opens_at(booking):
        return OPEN
    return BEFORE


def countdown(until: datetime, now: datetime) -> dict:
    """``{"days", "hours", "minutes"}`` left until ``until``, minutes rounded up (never 「あと0分」 before it)."""
    total = max(0, math.ceil((until - now).total_seconds() / 60))
    days, rest = divmod(total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return {"days": days, "hours": hours, "minutes": minutes}


@dataclass
class LessonPage:
    phase: str
    #: ``"video_tool"``, ``"fixed_url"``, ``"manual_url"`` or ``"in_person"``.
    venue: str
    tool_name: str | None
    join_url: str | None
    #: Why there is no URL to join: ``"withdrawn"`` (the host's link does not cover this booking),
    #: ``"preparing"`` (being issued; ``url_time_passed`` says whether its email is already due), or None.
    unavailable: str | None
    url_time_passed: bool
    opens_at: datetime
    opens_minutes: int
    left: dict
    cut_minutes: int | None

    @property
    def can_join(self) -> bool:
        return self.join_url is not None and self.phase in (OPEN, LIVE)


def lesson_page(booking: Booking, now: datetime | None = None) -> LessonPage:
    """What the lesson page shows now (reads only)."""
    now = now or clock.now()
    service, slot = booking.slot.service, booking.slot
    phase = phase_of(booking, now)
    tool = tools.tool_for(service)
    covering = issuing.covering_link(booking) if tool is not None else None
    if service.venue == Venue.FIXED_URL:
        venue = "fixed_url"
    elif service.venue == Venue.IN_PERSON:
        venue = "in_person"
    elif tool is not None:
        venue = "video_tool"
    else:
        venue = "manual_url"
    join_url = current_join_url(booking) if phase != CANCELLED else None
    unavailable = None
    if join_url is None and venue in ("video_tool", "fixed_url") and phase != CANCELLED:
        unavailable = "withdrawn" if venue == "video_tool" and covering is None else "preparing"
    return LessonPage(
        phase=phase, venue=venue, tool_name=tool.name if tool is not None else None, join_url=join_url,
        unavailable=unavailable, url_time_passed=slot.starts_at - timing.url_lead(slot.service) <= now, opens_at=opens_at(booking),
        opens_minutes=int((slot.starts_at - opens_at(booking)) / timedelta(minutes=1)),
        left=countdown(slot.starts_at, now),
        cut_minutes=tools.plan_cut_minutes(service, covering[1]) if covering else None)


def record_opened(booking: Booking) -> bool:
    """Note the first press of 「参加する」 (``bookings.join_opened_at``); True if this was it."""
    from sqlalchemy import update

    from app.extensions import begin_write, db

    begin_write()
    result = db.session.execute(update(Booking).where(Booking.id == booking.id, Booking.join_opened_at.is_(None))
                                .values(join_opened_at=clock.now()))
    db.session.commit()
    return bool(result.rowcount)
