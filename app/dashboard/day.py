"""What the dashboard shows, in the host's time zone: today / this week / later, the counts, what
needs the host's attention, the month calendar and the onboarding checklist.

Every function is one statement whatever the number of slots or guests (lists are LIMITed), so the
dashboard costs the same number of queries for a new host and for a busy one.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, exists, func, or_, select

from app import clock
from app.extensions import db
from app.services.guests import NOT_OPENED_HOURS, refused
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, LinkStatus, Meeting, MeetingStatus,
                        Service, Slot, SlotStatus, Venue)

#: Slots listed from today on (the rest is a link away), guests shown per lesson of today.
AGENDA_SLOTS = 20
TODAY_GUESTS = 10
#: Attention items of each kind listed at most.
ATTENTION_MAX = 20
#: Slots a month calendar lists at most (a host with more has other tools than a phone calendar).
MONTH_SLOTS = 600
TOOL_VENUES = (Venue.ZOOM, Venue.GOOGLE_MEET)


@dataclass(frozen=True, slots=True)
class Window:
    """The host's today, this week (Monday to Sunday) and this month, as UTC bounds."""

    today: date
    day_start: datetime
    day_end: datetime
    week_end: datetime
    month_start: datetime
    month_end: datetime


def _utc(day: date, tz: str) -> datetime:
    return clock.local_to_utc(datetime.combine(day, time()), tz)


def window(tz: str, now: datetime | None = None) -> Window:
    today = clock.to_local(now or clock.now(), tz).date()
    first = today.replace(day=1)
    after_month = (first + timedelta(days=32)).replace(day=1)
    return Window(today, _utc(today, tz), _utc(today + timedelta(days=1), tz),
                  _utc(today + timedelta(days=7 - today.weekday()), tz), _utc(first, tz), _utc(after_month, tz))


def _open_slots(host_id: int):
    return and_(Service.host_id == host_id, Slot.status == SlotStatus.OPEN)


def counts(host_id: int, w: Window) -> dict[str, int]:
    """今日 n件・今週 n件 (open dates, from the start of the local day) and 今月の予約 n名."""
    starts = Slot.starts_at
    today, week, guests = db.session.execute(
        select(func.count(case((and_(starts >= w.day_start, starts < w.day_end), 1))),
               func.count(case((and_(starts >= w.day_start, starts < w.week_end), 1))),
               func.coalesce(func.sum(case((and_(starts >= w.month_start, starts < w.month_end), Slot.booked_count),
                                           else_=0)), 0))
        .select_from(Slot).join(Slot.service)
        .where(_open_slots(host_id), starts >= min(w.month_start, w.day_start), starts < max(w.month_end, w.week_end))
    ).one()
    return {"today": today, "week": week, "month_guests": int(guests)}


def agenda(host_id: int, w: Window, limit: int = AGENDA_SLOTS) -> tuple[dict[str, list], bool]:
    """Open dates from the start of today, soonest first, split into ``today``, ``week`` and
    ``later``; each row with its service's title, venue and duration and its meeting's state."""
    rows = db.session.execute(
        select(Slot.id, Slot.starts_at, Slot.capacity, Slot.booked_count, Slot.service_id,
               Service.title.label("service_title"), Service.duration_minutes, Service.venue,
               Meeting.status.label("meeting_status"), Meeting.failure.label("meeting_failure"))
        .join(Slot.service).outerjoin(Meeting, Meeting.slot_id == Slot.id)
        .where(_open_slots(host_id), Slot.starts_at >= w.day_start)
        .order_by(Slot.starts_at, Slot.id).limit(limit + 1)).all()
    groups: dict[str, list] = {"today": [], "week": [], "later": []}
    for row in rows[:limit]:
        key = "today" if row.starts_at < w.day_end else "week" if row.starts_at < w.week_end else "later"
        groups[key].append(row)
    return groups, len(rows) > limit


def _latest_url_emails():
    """Each booking's latest URL email about its own slot (``booking_id``, ``latest``)."""
    d = Delivery.__table__.c
    return (select(d.booking_id, func.max(d.id).label("latest"))
            .where(d.kind == "meeting_url", d.booking_id.is_not(None)).group_by(d.booking_id, d.slot_id))


def today_guests(slot_ids: list[int], limit: int = TODAY_GUESTS) -> dict[int, list]:
    """The first ``limit`` confirmed guests of each slot with their latest URL email (``url``:
    a row with ``status``, ``due_at``, ``sent_at``, ``last_error``, ``bounced_at`` or None), in one query."""
    if not slot_ids:
        return {}
    b = Booking.__table__.c
    ranked = (select(b.slot_id, b.id, b.guest_name, b.guest_email,
                     func.row_number().over(partition_by=b.slot_id, order_by=b.id).label("rank"))
              .where(b.slot_id.in_(slot_ids), b.status == BookingStatus.CONFIRMED).subquery())
    latest = _latest_url_emails().where(Delivery.slot_id.in_(slot_ids)).subquery()
    d = Delivery.__table__.c
    rows = db.session.execute(
        select(ranked.c.slot_id, ranked.c.id, ranked.c.guest_name, ranked.c.guest_email,
               d.status, d.due_at, d.sent_at, d.last_error, d.bounced_at)
        .outerjoin(latest, latest.c.booking_id == ranked.c.id)
        .outerjoin(Delivery.__table__, d.id == latest.c.latest)
        .where(ranked.c.rank <= limit).order_by(ranked.c.slot_id, ranked.c.id)).all()
    guests: dict[int, list] = {}
    for row in rows:
        guests.setdefault(row.slot_id, []).append(row)
    return guests


def failed_url_emails(host_id: int, now: datetime, limit: int = ATTENTION_MAX) -> list[dict]:
    """The guests whose URL may not reach them, each with 「URLを再送」, in two statements:

    * ``kind`` ``failed``: confirmed guests of dates not yet over whose latest URL email failed,
      ``undeliverable`` when it was refused for good (5xx) or bounced after it was sent (a DSN):
      「このメールアドレスには届きません」;
    * ``kind`` ``not_opened``: guests of online dates starting within ``NOT_OPENED_HOURS`` (or
      under way) whose URL email was sent and who have not opened their join page (``not_opened``).

    Each a dict with ``id``, ``guest_name``, ``guest_email``, ``slot_id``, ``starts_at``,
    ``duration_minutes``, ``service_title``, ``kind``.
    """
    rows = db.session.execute(
        _url_email_rows(host_id, now)
        .where(or_(Delivery.status == DeliveryStatus.FAILED, Delivery.bounced_at.is_not(None)),
               Slot.starts_at > now - timedelta(days=1))
        .limit(limit)).all()
    failed = [{**r._mapping, "kind": "undeliverable" if refused(r) else "failed"}
              for r in rows if r.starts_at + timedelta(minutes=r.duration_minutes) > now]
    return failed + not_opened(host_id, now, limit)


def _url_email_rows(host_id: int, now: datetime):
    """Confirmed guests of the host's open dates with their latest URL email (``status``,
    ``last_error``, ``bounced_at``)."""
    latest = _latest_url_emails().subquery()
    d = Delivery.__table__.c
    return (select(Booking.id, Booking.guest_name, Booking.guest_email, Booking.slot_id, Slot.starts_at,
                   Service.duration_minutes, Service.title.label("service_title"), d.status, d.last_error,
                   d.bounced_at)
            .join(Booking.slot).join(Slot.service)
            .join(latest, latest.c.booking_id == Booking.id).join(Delivery.__table__, d.id == latest.c.latest)
            .where(_open_slots(host_id), Booking.status == BookingStatus.CONFIRMED)
            .order_by(Slot.starts_at, Booking.id))


def not_opened(host_id: int, now: datetime, limit: int = ATTENTION_MAX) -> list[dict]:
    """Guests of online dates from ``NOT_OPENED_HOURS`` before the start until the end whose URL
    email was sent (and did not bounce: it never arrived, ``failed_url_emails`` lists it) and who
    have not pressed 「参加する」 on their join page (``join_opened_at``):
    「まだ参加URLを開いていません」. In-person and own-URL services have no URL email: never listed."""
    rows = db.session.execute(
        _url_email_rows(host_id, now)
        .where(Delivery.status == DeliveryStatus.SENT, Delivery.bounced_at.is_(None), Booking.join_opened_at.is_(None),
               Service.venue.in_(TOOL_VENUES), Slot.starts_at <= now + timedelta(hours=NOT_OPENED_HOURS),
               Slot.starts_at > now - timedelta(days=1))
        .limit(limit)).all()
    return [{**r._mapping, "kind": "not_opened"}
            for r in rows if r.starts_at + timedelta(minutes=r.duration_minutes) > now]


def failed_meetings(host_id: int, now: datetime, limit: int = ATTENTION_MAX) -> list:
    """Booked dates to come whose meeting could not be issued (no URL for the guests yet)."""
    return db.session.execute(
        select(Slot.id, Slot.starts_at, Service.duration_minutes, Service.title.label("service_title"),
               Meeting.failure, Meeting.provider)
        .join(Slot.service).join(Meeting, Meeting.slot_id == Slot.id)
        .where(_open_slots(host_id), Slot.booked_count > 0, Slot.starts_at > now,
               Meeting.status == MeetingStatus.FAILED)
        .order_by(Slot.starts_at).limit(limit)).all()


def broken_links(zoom_link, google_link) -> list[str]:
    """The tools ("zoom", "google_meet") whose link needs relinking."""
    return [key for key, link in (("zoom", zoom_link), ("google_meet", google_link))
            if link is not None and link.status == LinkStatus.NEEDS_RELINK]


# --- the month calendar ---------------------------------------------------------------------------

def parse_month(text: str | None, today: date) -> date:
    """``2026-12`` → 2026-12-01; anything else is this month."""
    try:
        year, month = (int(part) for part in (text or "").split("-"))
        return date(year, month, 1) if 1970 <= year <= 2200 else today.replace(day=1)
    except ValueError:
        return today.replace(day=1)


def shift_month(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_weeks(host_id: int, tz: str, first: date) -> list[list[tuple[date, list]]]:
    """The weeks (Monday first) of the month of ``first``: ``(day, [slot rows])`` per day, days of
    the months around it with no slots listed. Slots are open and cancelled ones, soonest first."""
    rows = db.session.execute(
        select(Slot.id, Slot.starts_at, Slot.capacity, Slot.booked_count, Slot.status,
               Service.title.label("service_title"), Service.duration_minutes)
        .join(Slot.service)
        .where(Service.host_id == host_id, Slot.starts_at >= _utc(first, tz),
               Slot.starts_at < _utc(shift_month(first, 1), tz))
        .order_by(Slot.starts_at, Slot.id).limit(MONTH_SLOTS)).all()
    by_day: dict[date, list] = {}
    for row in rows:
        by_day.setdefault(clock.to_local(row.starts_at, tz).date(), []).append(row)
    return [[(day, by_day.get(day, []) if day.month == first.month else []) for day in week]
            for week in calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)]


# --- onboarding -----------------------------------------------------------------------------------

def checklist(host, video_linked: bool) -> list[tuple[str, bool]]:
    """The new host's steps, each ``(key, done)``: profile, service, date, video, share.

    Video counts as done when a tool is linked or no service needs one; sharing, when a guest booked.
    """
    services = select(Service.id).where(Service.host_id == host.id)
    has_service, has_slot, needs_tool, has_booking = db.session.execute(select(
        exists(services),
        exists(select(Slot.id).join(Slot.service).where(Service.host_id == host.id)),
        exists(services.where(Service.venue.in_(TOOL_VENUES))),
        exists(select(Booking.id).join(Booking.slot).join(Slot.service).where(Service.host_id == host.id)),
    )).one()
    return [("profile", bool(host.bio.strip() or host.photo_digest)), ("service", bool(has_service)),
            ("date", bool(has_slot)), ("video", bool(video_linked or (has_service and not needs_tool))),
            ("share", bool(has_booking))]
