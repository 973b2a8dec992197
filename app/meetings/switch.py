"""A video tool's link as a whole: what OFF affects, what relinking releases, and the bookings
made before linking (which the link covers only if the host chooses)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select, update

from app import clock
from app.extensions import begin_write, db
from app.meetings import retry
from app.meetings.provider import VideoTool
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, LinkStatus, Meeting, MeetingStatus,
                        Service, Slot, SlotStatus, User, Venue)
from app.pagination import Page, counted, first_page
from app.queue import enqueue_batch_after_commit

#: Emails that carry or depend on a slot's meeting URL; cancelled when its tool goes OFF.
URL_EMAIL_KINDS = ("meeting_url", "meeting_host_notice")
#: Meetings that may be live on the host's tool and are ours to delete there.
ON_TOOL = (MeetingStatus.ISSUED, MeetingStatus.ISSUING, MeetingStatus.DELETE_FAILED)


def release_waiting_urls(host_id: int, slot_id: int | None = None) -> int:
    """URL emails waiting for a meeting (the host's, or one slot's) become due now; returns how many.

    Called when a meeting can be issued again: a relink, a meeting just issued. Each still
    checks its meeting when it renders, and waits again if there is none.
    """
    from app import jobs  # jobs import the wing
    from app.mail.render import WAITING_PREFIX

    criteria = [Delivery.host_id == host_id, Delivery.kind == "meeting_url", Delivery.status == DeliveryStatus.PENDING,
                Delivery.last_error.startswith(WAITING_PREFIX), Delivery.due_at > clock.now()]
    if slot_id is not None:
        criteria.append(Delivery.slot_id == slot_id)
    ids = db.session.scalars(select(Delivery.id).where(*criteria)).all()
    if ids:
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(due_at=clock.now())
                           .execution_options(synchronize_session=False))
        for delivery_id in ids:
            enqueue_batch_after_commit(jobs.send_deliveries, delivery_id, queue="mail")
    return len(ids)


def left_undeleted(host_id: int, tool: VideoTool) -> list[Meeting]:
    """The host's meetings the tool would not delete (not legacy), soonest first, with their slots."""
    from sqlalchemy.orm import contains_eager

    return db.session.scalars(
        select(Meeting).join(Meeting.slot)
        .where(Meeting.host_id == host_id, Meeting.provider == tool.key, Meeting.legacy.is_(False),
               Meeting.status == MeetingStatus.DELETE_FAILED)
        .options(contains_eager(Meeting.slot)).order_by(Slot.starts_at)).all()


def on_linked(host_id: int, tool: VideoTool) -> None:
    """The tool was just linked (or relinked): URL emails waiting for a meeting go now, and the
    meetings it could not delete are tried again, once this transaction commits."""
    release_waiting_urls(host_id)
    for meeting in left_undeleted(host_id, tool):
        retry.queue_withdraw(meeting.slot_id)


def _tool_services(host_id, tool: VideoTool) -> tuple:
    return Service.host_id == host_id, Service.venue == Venue(tool.key)


def upcoming_bookings(host: User, tool: VideoTool) -> list[Booking]:
    """Confirmed future bookings of the host's services that use the tool."""
    return db.session.scalars(
        select(Booking).join(Booking.slot).join(Slot.service)
        .where(*_tool_services(host.id, tool), Slot.status == SlotStatus.OPEN,
               Slot.starts_at > clock.now(), Booking.status == BookingStatus.CONFIRMED)
        .order_by(Slot.starts_at, Booking.id)
    ).all()


def live_meetings(host_id: int, tool: VideoTool) -> list[Meeting]:
    """Meetings issued (or being issued, or not deleted yet) on the host's account of the tool, for
    slots not yet over."""
    found = db.session.scalars(
        select(Meeting).join(Meeting.slot)
        .where(Meeting.host_id == host_id, Meeting.provider == tool.key, Meeting.legacy.is_(False),
               Meeting.status.in_(ON_TOOL))
        .order_by(Slot.starts_at)
    ).all()
    return [m for m in found if m.slot.ends_at > clock.now()]


def affected_slots_by_service(bookings: list[Booking]) -> list[tuple[Service, list[int]]]:
    """The services and slot ids of these bookings (to message their guests)."""
    grouped: dict[int, tuple[Service, list[int]]] = {}
    for booking in bookings:
        service = booking.slot.service
        slot_ids = grouped.setdefault(service.id, (service, []))[1]
        if booking.slot_id not in slot_ids:
            slot_ids.append(booking.slot_id)
    return list(grouped.values())


@dataclass
class OffImpact:
    bookings: list[Booking]
    meetings: list[Meeting]
    #: (booking, when its URL email was sent)
    url_sent: list[tuple[Booking, datetime]]


def off_impact(host: User, tool: VideoTool) -> OffImpact:
    """What turning the tool OFF would do, for the confirmation page."""
    bookings = upcoming_bookings(host, tool)
    sent = {}
    if bookings:
        rows = db.session.execute(
            select(Delivery.booking_id, Delivery.sent_at)
            .where(Delivery.booking_id.in_([b.id for b in bookings]), Delivery.kind == "meeting_url",
                   Delivery.status == DeliveryStatus.SENT)
        ).all()
        sent = {booking_id: sent_at for booking_id, sent_at in rows}
    return OffImpact(bookings=bookings, meetings=live_meetings(host.id, tool),
                     url_sent=[(b, sent[b.id]) for b in bookings if b.id in sent])


def _tool_slots(host_id: int, tool: VideoTool):
    return select(Slot.id).join(Slot.service).where(*_tool_services(host_id, tool))


def stop(host: User, tool: VideoTool) -> int:
    """The first half of turning a tool OFF (``withdraw.turn_off``): from now on it is no link.

    URL emails and host notices of its services not yet sent are cancelled, and the URL emails
    already written give up their keys: the meetings they were for are withdrawn, so turning the
    tool ON again may write each booking a new one. Returns how many emails were cancelled.
    """
    begin_write()
    found = tool.link_for(host.id)
    if found is not None:
        found.status = LinkStatus.OFF
    slots = _tool_slots(host.id, tool)
    cancelled = db.session.execute(
        update(Delivery).where(Delivery.host_id == host.id, Delivery.kind.in_(URL_EMAIL_KINDS),
                               Delivery.status == DeliveryStatus.PENDING, Delivery.slot_id.in_(slots))
        .values(status=DeliveryStatus.CANCELLED).execution_options(synchronize_session=False)).rowcount
    db.session.execute(update(Delivery).where(Delivery.host_id == host.id, Delivery.kind == "meeting_url",
                                              Delivery.dedupe_key.is_not(None), Delivery.slot_id.in_(slots))
                       .values(dedupe_key=None).execution_options(synchronize_session=False))
    return cancelled


# --- bookings made before linking ----------------------------------------------------------------

def before_link_criteria(host_id, now, applies_from, venue) -> tuple:
    """Where-clauses (over bookings joined to slots and services) of the upcoming bookings of the
    tool's services a link does not cover: confirmed, and made before it was turned ON."""
    # Only a slot booked before the link can hold such a booking, and its row says when it was
    # first booked: the index of bookings by slot is probed for those slots only (probing it for
    # every upcoming slot tempted PostgreSQL's planner into reading every booking).
    return (Service.host_id == host_id, Service.venue == venue, Slot.status == SlotStatus.OPEN,
            Slot.starts_at > now, Slot.first_booked_at < applies_from,
            Booking.status == BookingStatus.CONFIRMED, Booking.created_at < applies_from)


def not_covered_preview(link, tool: VideoTool, limit: int) -> Page:
    """The first ``limit`` bookings the link does not cover (soonest first), and how many there are.

    Rows with ``id``, ``starts_at``, ``title`` (the service's) and ``guest_name``.
    """
    return first_page(_not_covered_statement(), limit, host_id=link.host_id, now=clock.now(),
                      applies_from=link.applies_from, venue=Venue(tool.key))


@cache
def _not_covered_statement():
    # Built once, run with ``host_id``, ``now``, ``applies_from`` and ``venue``.
    when = Slot.starts_at.type
    return counted(select(Booking.id, Slot.starts_at, Service.title, Booking.guest_name)
                   .join(Booking.slot).join(Slot.service)
                   .where(*before_link_criteria(bindparam("host_id"), bindparam("now", type_=when),
                                                bindparam("applies_from", type_=when),
                                                bindparam("venue", type_=Service.venue.type)))
                   .order_by(Slot.starts_at, Booking.id))


def bookings_before_link(link, tool: VideoTool) -> list[Booking]:
    """Upcoming bookings of the tool's services the link does not cover, slots and services loaded."""
    from sqlalchemy.orm import contains_eager

    return db.session.scalars(
        select(Booking).join(Booking.slot).join(Slot.service)
        .where(*before_link_criteria(link.host_id, clock.now(), link.applies_from, Venue(tool.key)))
        .options(contains_eager(Booking.slot).contains_eager(Slot.service))
        .order_by(Slot.starts_at, Booking.id)
    ).all()


def services_cut(host: User, tool: VideoTool, minutes: int, limit: int) -> Page:
    """The host's services of the tool longer than ``minutes`` (its plan's cut): the first ``limit``
    by id, and how many. Rows with ``id``, ``title`` and ``duration_minutes``."""
    return first_page(_services_cut_statement(), limit, host_id=host.id, venue=Venue(tool.key), minutes=minutes)


@cache
def _services_cut_statement():
    return counted(select(Service.id, Service.title, Service.duration_minutes)
                   .where(Service.host_id == bindparam("host_id"),
                          Service.venue == bindparam("venue", type_=Service.venue.type),
                          Service.duration_minutes > bindparam("minutes"))
                   .order_by(Service.id))
