"""Slots (開催日時): add, move and cancel, telling booked guests what changed."""
from datetime import datetime
from functools import cache

from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, case, func, or_, select

from app import clock, limits
from app.extensions import db
from app.mail.outbox import cancel_pending, queue_email
from app.mail.guest import guest_email_context
from app.mail.render import SkipDelivery, email_kind
from app.meetings import issuing, planning, timing
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, Meeting, Service, Slot, SlotStatus,
                        User)
from app.pagination import Page, paginate

#: Slots per page on a service page and on the list of all upcoming slots.
SLOTS_PER_PAGE = 20
#: The tabs of a service page: slots still to come (cancelled ones too), and past open ones.
TABS = ("upcoming", "past")


class SlotInPast(Exception):
    """The requested date/time is not in the future."""


class SlotNotOpen(Exception):
    """The slot was cancelled and cannot be changed."""


class SlotTaken(Exception):
    """The service already has an open slot at that time."""


def _check_start(service: Service, starts_at: datetime, ignore: Slot | None = None) -> None:
    if starts_at <= clock.now():
        raise SlotInPast()
    clash = db.session.scalar(
        select(Slot.id).where(Slot.service_id == service.id, Slot.starts_at == starts_at,
                              Slot.status == SlotStatus.OPEN, Slot.id != (ignore.id if ignore else -1)))
    if clash:
        raise SlotTaken()


def add_slot(service: Service, starts_at: datetime) -> Slot:
    """Open a new slot (UTC ``starts_at``) with the service's capacity."""
    _check_start(service, starts_at)
    slot = Slot(service=service, starts_at=starts_at, capacity=service.capacity)
    db.session.add(slot)
    db.session.flush()
    return slot


def move_slot(slot: Slot, starts_at: datetime) -> Slot:
    """Move a slot to a new time and tell each booked guest (their links stay the same).

    :raises SlotNotOpen, SlotInPast, SlotTaken, limits.NoticeBudgetSpent: nothing changes then.
    """
    if not slot.is_open:
        raise SlotNotOpen()
    _check_start(slot.service, starts_at, ignore=slot)
    limits.spend_host_notices(slot.service.host_id, len(slot.confirmed_bookings))
    previous = slot.starts_at
    slot.starts_at = starts_at
    for booking in slot.confirmed_bookings:
        queue_email("slot_moved", to_email=booking.guest_email, to_name=booking.guest_name,
                    host_id=slot.service.host_id, booking_id=booking.id, slot_id=slot.id,
                    payload={"previous_starts_at": previous.isoformat()})
    db.session.flush()
    planning.slot_moved(slot)
    return slot


def cancel_slot(slot: Slot) -> int:
    """Cancel a slot and all its bookings, telling each guest; return how many guests were told.

    :raises SlotNotOpen, limits.NoticeBudgetSpent: nothing changes then.
    """
    if not slot.is_open:
        raise SlotNotOpen()
    limits.spend_host_notices(slot.service.host_id, len(slot.confirmed_bookings))
    slot.status = SlotStatus.CANCELLED
    told = 0
    for booking in slot.confirmed_bookings:
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at = clock.now()
        booking.cancelled_by_host = True  # the host cancelled the date: no guest cancelled
        cancel_pending(booking_id=booking.id)
        queue_email("slot_cancelled", to_email=booking.guest_email, to_name=booking.guest_name,
                    host_id=slot.service.host_id, booking_id=booking.id, slot_id=slot.id)
        told += 1
    slot.booked_count = 0
    db.session.flush()
    planning.slot_cancelled(slot)
    return told


def _in_tab(tab: str, now: datetime):
    if tab == "past":
        return and_(Slot.starts_at <= now, Slot.status == SlotStatus.OPEN)
    return Slot.starts_at > now


@cache
def _tab_counts_statement():
    # Built once, run with ``service_id`` and ``now`` (as the page's other hot statements are:
    # building a statement and its cache key costs about as much as running it).
    now = bindparam("now", type_=Slot.starts_at.type)
    return (select(*(func.count(case((_in_tab(tab, now), 1))) for tab in TABS))
            .where(Slot.service_id == bindparam("service_id")))


def tab_counts(service: Service, now: datetime) -> dict[str, int]:
    """How many slots each tab of the service page lists at ``now``, counted in one query."""
    row = db.session.execute(_tab_counts_statement(), {"service_id": service.id, "now": now}).one()
    return dict(zip(TABS, row))


@cache
def _tab_page_statement(tab: str):
    # Built once per tab, run with ``service_id``, ``now``, ``limit`` and ``offset``. Each slot
    # comes with its Zoom meeting row (at most one: ``meetings.slot_id`` is unique).
    order = (Slot.starts_at.desc(), Slot.id.desc()) if tab == "past" else (Slot.starts_at, Slot.id)
    return (select(Slot, Meeting).outerjoin(Meeting, Meeting.slot_id == Slot.id)
            .where(Slot.service_id == bindparam("service_id"),
                   _in_tab(tab, bindparam("now", type_=Slot.starts_at.type)))
            .order_by(*order).limit(bindparam("limit")).offset(bindparam("offset")))


def service_slots(service: Service, tab: str, page: int,
                  per_page: int = SLOTS_PER_PAGE) -> tuple[Page, dict[str, int], dict[int, Meeting]]:
    """One page of a tab of the service page, the slot count of every tab, and the Zoom meetings
    of the page's slots by slot id (slots without one are absent), in two queries.

    ``upcoming``: slots still to come, open or cancelled, soonest first. ``past``: slots that have
    started and were not cancelled, latest first.
    """
    now = clock.now()
    counts = tab_counts(service, now)
    shown = Page.at(page, per_page, counts[tab])
    meetings = {}
    if shown.total:
        rows = db.session.execute(_tab_page_statement(tab), {
            "service_id": service.id, "now": now, "limit": per_page, "offset": shown.offset})
        for slot, meeting in rows:
            shown.items.append(slot)
            if meeting is not None:
                meetings[slot.id] = meeting
    return shown, counts, meetings


def upcoming_page_of(slot: Slot, per_page: int = SLOTS_PER_PAGE) -> int:
    """The page of the ``upcoming`` tab that lists ``slot`` (a slot just added, say)."""
    before = db.session.scalar(
        select(func.count()).select_from(Slot)
        .where(Slot.service_id == slot.service_id, Slot.starts_at > clock.now(),
               or_(Slot.starts_at < slot.starts_at, and_(Slot.starts_at == slot.starts_at, Slot.id < slot.id))))
    return before // per_page + 1


def _upcoming(host_id, now):
    """The host's open future slots, soonest first (``host_id`` and ``now``: values or bind parameters)."""
    return (
        select(Slot.id, Slot.starts_at, Slot.capacity, Slot.booked_count, Slot.service_id,
               Service.title.label("service_title"), Service.duration_minutes)
        .join(Slot.service)
        .where(Service.host_id == host_id, Slot.status == SlotStatus.OPEN, Slot.starts_at > now)
        .order_by(Slot.starts_at, Slot.id)
    )


@cache
def _next_slots_statement():
    # Built once, run with ``host_id``, ``now`` and ``limit``: the dashboard runs it on every view.
    return _upcoming(bindparam("host_id"), bindparam("now", type_=Slot.starts_at.type)).limit(bindparam("limit"))


def upcoming_slots(host: User, page: int, per_page: int = SLOTS_PER_PAGE) -> Page:
    """A page of the host's open future slots across services, soonest first, as narrow rows.

    Each row has ``id``, ``starts_at``, ``capacity``, ``booked_count``, ``service_id``,
    ``service_title`` and ``duration_minutes``: the lists of slots need nothing more.
    """
    return paginate(_upcoming(host.id, clock.now()), page, per_page, scalars=False)


def next_slots(host: User, limit: int) -> tuple[list, bool]:
    """The host's next ``limit`` open slots (rows as in ``upcoming_slots``), and whether more follow.

    One query and no COUNT: the dashboard only links to the rest.
    """
    rows = db.session.execute(_next_slots_statement(),
                              {"host_id": host.id, "now": clock.now(), "limit": limit + 1}).all()
    return rows[:limit], len(rows) > limit


def join_url_promise(booking: Booking) -> dict:
    """What guest emails and pages tell about the join URL of a booking, as template context.

    ``url_promise`` is ``"sent"`` (its URL email went out: the stable ``/j/`` link in it stays
    valid, a moved meeting keeps it), ``"soon"`` (the lesson starts within the URL lead, so the
    URL email is due now), ``"ahead"`` (it comes ``url_lead_hours`` before the start), or None
    when the host's Zoom link does not issue URLs for this booking (no link, not a Zoom service,
    booked before linking): then nothing is promised.
    """
    hours = booking.slot.service.url_lead_hours
    if issuing.covering_link(booking) is None:
        return {"url_promise": None, "url_lead_hours": hours}
    sent = db.session.scalar(select(Delivery.id).where(
        Delivery.booking_id == booking.id, Delivery.kind == "meeting_url", Delivery.status == DeliveryStatus.SENT)
        .limit(1))
    if sent is not None:
        promise = "sent"
    elif booking.slot.starts_at - timing.url_lead(booking.slot.service) <= clock.now():
        promise = "soon"
    else:
        promise = "ahead"
    return {"url_promise": promise, "url_lead_hours": hours}


@email_kind("slot_moved", subject=lambda ctx: _("【日時変更】%(title)s", title=ctx["service"].title))
def _slot_moved_context(delivery: Delivery) -> dict:
    ctx = guest_email_context(delivery)
    if not ctx["booking"].is_confirmed:
        raise SkipDelivery("booking no longer confirmed")
    ctx["previous_starts_at"] = datetime.fromisoformat(delivery.payload["previous_starts_at"])
    ctx.update(join_url_promise(ctx["booking"]))
    return ctx


@email_kind("slot_cancelled", subject=lambda ctx: _("【開催中止】%(title)s", title=ctx["service"].title))
def _slot_cancelled_context(delivery: Delivery) -> dict:
    return guest_email_context(delivery)
