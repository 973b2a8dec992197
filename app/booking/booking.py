"""Booking a seat, cancelling it, and the guest emails about it.

The last seat is taken with one guarded ``UPDATE … SET booked_count = booked_count + 1 WHERE
booked_count < capacity``: the database decides who gets it, so two guests racing for one seat
can never both win, on SQLite or PostgreSQL.
"""
from dataclasses import dataclass
from urllib.parse import quote

from flask_babel import gettext as _
from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from app import clock, limits
from app.auth.accounts import normalize_email
from app.extensions import begin_write, db
from app.mail.outbox import cancel_pending, queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import Booking, BookingStatus, Delivery, Service, Slot, SlotStatus, Venue
from app.mail.guest import guest_email_context
from app.meetings import planning, timing, tools
from app.notices import notices
from app.services.slots import join_url_promise
from app.urls import external_url


class SlotUnavailable(Exception):
    """The slot is cancelled, in the past, or not of this service."""


class SlotFull(Exception):
    """No seat left."""


class AlreadyBooked(Exception):
    """This email (its mailbox) already holds a seat in this slot."""


class TooManyForMailbox(Exception):
    """This mailbox was sent booking emails too often lately (``MAILBOX_LIMITS``)."""


def open_slots(service: Service) -> list[Slot]:
    """The service's future open slots, soonest first (full ones included, shown as full)."""
    return db.session.scalars(
        select(Slot).where(Slot.service_id == service.id, Slot.status == SlotStatus.OPEN,
                           Slot.starts_at > clock.now()).order_by(Slot.starts_at)
    ).all()


def bookable_slot(service: Service, slot_id: int) -> Slot:
    """The slot a guest chose, when it can still be booked (the confirm step shows it).

    Only a check: ``book`` takes the seat, and may still find it gone.

    :raises SlotUnavailable, SlotFull: as ``book`` would.
    """
    slot = db.session.get(Slot, slot_id)
    if slot is None or slot.service_id != service.id or not slot.is_open or slot.starts_at <= clock.now():
        raise SlotUnavailable()
    if slot.seats_left <= 0:
        raise SlotFull()
    return slot


def venue_of(service: Service) -> dict:
    """How a service is held, as guest pages and emails say it before and after booking.

    ``venue`` is ``"video_tool"`` (with ``tool_name``) only when the host's link to the service's
    video tool issues the URLs (otherwise it reads as any online service, ``"online"``: the host
    hands out the link), ``"fixed_url"`` for the host's own URL, ``"in_person"`` with
    ``venue_address`` and a ``map_url`` (a map search for it), or ``"online"``.
    """
    if service.venue == Venue.IN_PERSON:
        address = service.venue_address
        return {"venue": "in_person", "venue_address": address,
                "map_url": _MAP_SEARCH + quote(address) if address else None}
    if service.venue == Venue.FIXED_URL and service.meeting_url:
        return {"venue": "fixed_url"}
    tool = tools.tool_for(service)
    if tool is not None and tool.link_for(service.host_id) is not None:
        return {"venue": "video_tool", "tool_name": tool.name, "url_lead_hours": service.url_lead_hours}
    return {"venue": "online"}


#: A map search anyone can open (no key, no script on our pages): Google Maps' documented URL.
_MAP_SEARCH = "https://www.google.com/maps/search/?api=1&query="


def joining(booking: Booking) -> dict:
    """How this guest joins, as template context for the booked page and the confirmation email:
    ``venue_of`` the service, plus ``url_promise`` for a booking whose URL a video tool issues
    (``join_url_promise``), or the guest's ``join_link`` to the host's fixed URL."""
    context = venue_of(booking.slot.service)
    if context["venue"] == "video_tool":
        context.update(join_url_promise(booking))
        if context["url_promise"] is None:  # booked before the host linked the tool: the host hands it out
            context["venue"] = "online"
    elif context["venue"] == "fixed_url":
        context["join_link"] = external_url("booking.join", token=booking.join_token)
    return context


def take_seat(slot_id: int, service_id: int, now) -> bool:
    """Take one seat of an open future slot of the service, if one is left; True when taken.

    One guarded ``UPDATE``: the database decides who gets the last seat. The slot remembers when it
    was first booked (``first_booked_at``).
    """
    return bool(db.session.execute(
        update(Slot)
        .where(Slot.id == slot_id, Slot.service_id == service_id, Slot.status == SlotStatus.OPEN,
               Slot.starts_at > now, Slot.booked_count < Slot.capacity)
        .values(booked_count=Slot.booked_count + 1,
                first_booked_at=case((Slot.first_booked_at.is_(None) | (Slot.first_booked_at > now), now),
                                     else_=Slot.first_booked_at))
        .execution_options(synchronize_session=False)
    ).rowcount)


def book(service: Service, slot_id: int, guest_name: str, guest_email: str) -> Booking:
    """Take one seat of a slot for a guest and queue the confirmation email; commits.

    :raises SlotUnavailable, SlotFull, AlreadyBooked, TooManyForMailbox: nothing is saved then.
    """
    email = normalize_email(guest_email)
    if not limits.allow_for_mailbox("booking", email):
        raise TooManyForMailbox()
    begin_write()
    now = clock.now()
    if not take_seat(slot_id, service.id, now):
        slot = db.session.get(Slot, slot_id)
        db.session.rollback()
        if slot is None or slot.service_id != service.id or not slot.is_open or slot.starts_at <= clock.now():
            raise SlotUnavailable()
        raise SlotFull()
    booking = Booking(slot_id=slot_id, guest_name=guest_name.strip(), guest_email=email,
                      mailbox=limits.mailbox_of(email), created_at=now)
    db.session.add(booking)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AlreadyBooked() from None
    queue_email("booking_confirmation", to_email=email, to_name=booking.guest_name,
                host_id=service.host_id, booking_id=booking.id, slot_id=slot_id,
                dedupe_key=f"confirmation:{booking.id}")
    planning.booking_made(booking)
    notices.booking_made(booking)
    db.session.commit()
    return booking


def booking_for_cancel_token(token: str) -> Booking | None:
    """The booking a guest's cancel link points to."""
    return db.session.scalar(select(Booking).where(Booking.cancel_token == token))


def booking_for_join_token(token: str) -> Booking | None:
    """The booking a guest's stable join link ``/j/<token>`` points to."""
    return db.session.scalar(select(Booking).where(Booking.join_token == token))


@dataclass(frozen=True)
class Cancellation:
    """What cancelling a booking did."""

    #: The guest was emailed about it (not when their mailbox got too many emails lately).
    emailed: bool


def cancel_booking(booking: Booking, *, by_host: bool = False, message: str = "") -> Cancellation | None:
    """Cancel a confirmed booking: frees its seat, cancels its pending emails, tells the guest.

    :param by_host: the host removed it (a bot's booking, a guest who asked): the guest's email
        says so, with the host's ``message`` if any; it counts against the host's notice budget.
    :returns: None when it was cancelled already.
    """
    if not booking.is_confirmed:
        return None
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = clock.now()
    booking.cancelled_by_host = by_host
    db.session.execute(
        update(Slot).where(Slot.id == booking.slot_id, Slot.booked_count > 0)
        .values(booked_count=Slot.booked_count - 1).execution_options(synchronize_session=False)
    )
    cancel_pending(booking_id=booking.id)
    emailed = by_host or limits.allow_for_mailbox("cancel", booking.guest_email)
    if emailed:
        queue_email("booking_removed" if by_host else "booking_cancelled", to_email=booking.guest_email,
                    to_name=booking.guest_name, host_id=booking.slot.service.host_id, booking_id=booking.id,
                    slot_id=booking.slot_id, payload={"message": message} if by_host and message else None)
    db.session.flush()
    planning.booking_cancelled(booking)
    notices.booking_cancelled(booking)
    return Cancellation(emailed=emailed)


@email_kind("booking_confirmation",
            subject=lambda ctx: _("【お申し込み完了】%(title)s", title=ctx["service"].title))
def _confirmation_context(delivery: Delivery) -> dict:
    from app.booking import calendar  # calendar builds on this module

    ctx = guest_email_context(delivery)
    if not ctx["booking"].is_confirmed:
        raise SkipDelivery("booking cancelled before the confirmation was sent")
    ctx.update(joining(ctx["booking"]))
    ctx.update(calendar.links(ctx["booking"]))
    return ctx


@email_kind("booking_cancelled",
            subject=lambda ctx: _("【キャンセル受付】%(title)s", title=ctx["service"].title))
def _cancelled_context(delivery: Delivery) -> dict:
    return guest_email_context(delivery)


@email_kind("booking_removed",
            subject=lambda ctx: _("【ご予約の取り消し】%(title)s", title=ctx["service"].title))
def _removed_context(delivery: Delivery) -> dict:
    return {**guest_email_context(delivery), "host_message": delivery.payload.get("message", "")}
