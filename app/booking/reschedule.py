"""A guest moves their own booking to another date of the same service (「日時を変更」).

The link in guest emails (``/r/<cancel_token>``) is offered while the service allows it
(``services.reschedule_cutoff_hours``, NULL = the host handles changes) and until that many hours
before the booked date. The move is one transaction, like booking and cancelling: the target's
seat is taken with the same guarded ``UPDATE … WHERE booked_count < capacity`` as ``book`` (so
two guests racing for its last seat can never both win), the old slot's seat is given back, and
the booking row points to the new slot. The guest's pending URL email is replaced by one at the
new date's lead time, with its reminders (``planning.booking_made``), the old slot's meeting is withdrawn when
nobody is left there, the guest gets 「日時変更」 (``booking_moved``) and the host a notice
(``host_booking_moved``).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock, limits
from app.booking.booking import AlreadyBooked, SlotFull, SlotUnavailable, joining, take_seat
from app.extensions import begin_write, db
from app.mail.guest import guest_email_context
from app.mail.outbox import cancel_pending, queue_email
from app.mail.render import SkipDelivery, email_kind
from app.meetings import issuing, planning, retry
from app.models import Booking, BookingStatus, Delivery, Service, Slot, SlotStatus, User
from app.urls import external_url

__all__ = ["AlreadyBooked", "SlotFull", "SlotUnavailable", "NotMovable", "PastCutoff", "RescheduleOff",
           "SameSlot", "Move", "move_booking", "state_of", "target_slots"]

GUEST_KIND = "booking_moved"
HOST_KIND = "host_booking_moved"


class NotMovable(Exception):
    """The booking is cancelled, or its date is cancelled or over."""


class RescheduleOff(Exception):
    """The host handles changes themselves (``reschedule_cutoff_hours`` is NULL)."""


class PastCutoff(Exception):
    """Too close to the booked date: the host's cutoff has passed."""


class SameSlot(Exception):
    """The guest chose the date they already hold."""


def cutoff_at(booking: Booking) -> datetime | None:
    """Until when the guest may move this booking themselves; None when the service does not allow it."""
    hours = booking.slot.service.reschedule_cutoff_hours
    if hours is None:
        return None
    return clock.as_utc(booking.slot.starts_at) - timedelta(hours=hours)


def state_of(booking: Booking) -> str:
    """``"open"`` (may be moved now), ``"off"`` (the host handles changes), ``"cutoff"`` (too late),
    or ``"inactive"`` (cancelled booking, cancelled or past date)."""
    slot = booking.slot
    if not booking.is_confirmed or not slot.is_open or clock.as_utc(slot.starts_at) <= clock.now():
        return "inactive"
    cutoff = cutoff_at(booking)
    if cutoff is None:
        return "off"
    return "open" if clock.now() < cutoff else "cutoff"


def target_slots(booking: Booking) -> list[Slot]:
    """The service's other future open dates, soonest first (full ones included, shown as full)."""
    return db.session.scalars(
        select(Slot).where(Slot.service_id == booking.slot.service_id, Slot.status == SlotStatus.OPEN,
                           Slot.starts_at > clock.now(), Slot.id != booking.slot_id).order_by(Slot.starts_at)
    ).all()


@dataclass(frozen=True)
class Move:
    """What moving a booking did."""

    previous_starts_at: datetime
    #: The guest was emailed 「日時変更」 (not when their mailbox got too many emails lately).
    emailed: bool


def _check(booking: Booking) -> None:
    state = state_of(booking)
    if state == "inactive":
        raise NotMovable()
    if state == "off":
        raise RescheduleOff()
    if state == "cutoff":
        raise PastCutoff()


def move_booking(booking: Booking, slot_id: int) -> Move:
    """Move a confirmed booking to another date of its service, in one transaction; commits.

    :raises NotMovable, RescheduleOff, PastCutoff, SameSlot, SlotUnavailable, SlotFull, AlreadyBooked:
        nothing is changed then (the guest keeps their booking).
    """
    booking_id = booking.id
    begin_write()  # from here on nobody else writes: the checks below hold until the commit
    booking = db.session.get(Booking, booking_id, populate_existing=True)
    old = db.session.get(Slot, booking.slot_id, populate_existing=True)
    _check(booking)
    if slot_id == old.id:
        db.session.rollback()
        raise SameSlot()
    now = clock.now()
    give_back = (update(Slot).where(Slot.id == old.id, Slot.booked_count > 0)
                 .values(booked_count=Slot.booked_count - 1).execution_options(synchronize_session=False))
    if old.id < slot_id:  # both rows locked in id order: two guests swapping dates never deadlock (PostgreSQL)
        db.session.execute(give_back)
    if not take_seat(slot_id, old.service_id, now):
        target = db.session.get(Slot, slot_id, populate_existing=True)
        unavailable = (target is None or target.service_id != old.service_id or not target.is_open
                       or clock.as_utc(target.starts_at) <= now)
        db.session.rollback()
        raise SlotUnavailable() if unavailable else SlotFull()
    if old.id > slot_id:
        db.session.execute(give_back)
    previous = clock.as_utc(old.starts_at)
    booking.slot_id = slot_id
    try:
        db.session.flush()
    except IntegrityError:  # this mailbox already holds a seat on the target date
        db.session.rollback()
        raise AlreadyBooked() from None
    db.session.expire(booking, ["slot"])
    db.session.expire(old, ["bookings", "booked_count"])
    # The URL email follows the new date: the old one (pending, or sent for the old date) gives
    # its key up so the new date's can be planned like a new booking's.
    cancel_pending(booking_id=booking.id, kind="meeting_url")
    db.session.execute(
        update(Delivery).where(Delivery.booking_id == booking.id, Delivery.kind == "meeting_url",
                               Delivery.dedupe_key == f"meeting_url:{booking.id}")
        .values(dedupe_key=f"meeting_url:{booking.id}:{int(previous.timestamp())}")
        .execution_options(synchronize_session=False))
    planning.booking_made(booking)
    left = db.session.scalar(select(func.count(Booking.id)).where(
        Booking.slot_id == old.id, Booking.status == BookingStatus.CONFIRMED))
    if not left and issuing.meeting_for(old.id) is not None:  # as planning.booking_cancelled
        retry.queue_withdraw(old.id)
    emailed = limits.allow_for_mailbox("cancel", booking.guest_email)
    service = old.service
    if emailed:
        queue_email(GUEST_KIND, to_email=booking.guest_email, to_name=booking.guest_name, host_id=service.host_id,
                    booking_id=booking.id, slot_id=slot_id, payload={"previous_starts_at": previous.isoformat()})
    _notify_host(service, booking, previous)
    db.session.commit()
    return Move(previous_starts_at=previous, emailed=emailed)


def _notify_host(service: Service, booking: Booking, previous: datetime) -> None:
    """The host's 「ご予約の日時が変更されました」, one per move (the setting for booking notices)."""
    host = service.host
    if host.deleted_at is not None or not host.notify_bookings:
        return
    queue_email(HOST_KIND, to_email=host.email, to_name=host.display_name, locale=host.locale, host_id=host.id,
                slot_id=booking.slot_id,
                payload={"booking_id": booking.id, "previous_starts_at": previous.isoformat()})


@email_kind(GUEST_KIND, subject=lambda ctx: _("【日時変更】%(title)s", title=ctx["service"].title))
def _moved_context(delivery: Delivery) -> dict:
    from app.booking import calendar  # calendar builds on app.booking.booking

    ctx = guest_email_context(delivery)
    if not ctx["booking"].is_confirmed:
        raise SkipDelivery("booking cancelled since")
    ctx["previous_starts_at"] = datetime.fromisoformat(delivery.payload["previous_starts_at"])
    ctx.update(joining(ctx["booking"]))
    ctx.update(calendar.links(ctx["booking"]))
    return ctx


@email_kind(HOST_KIND, subject=lambda ctx: _("ご予約の日時が変更されました（%(title)s）", title=ctx["service"].title))
def _host_moved_context(delivery: Delivery) -> dict:
    host = db.session.get(User, delivery.host_id)
    if host is None or host.deleted_at is not None:
        raise SkipDelivery("the host closed the account")
    if not host.notify_bookings:
        raise SkipDelivery("the host turned booking notices off")
    booking = db.session.get(Booking, delivery.payload["booking_id"])
    if booking is None or booking.slot.service.host_id != host.id:
        raise SkipDelivery("booking gone")
    slot = booking.slot
    return {"host": host, "booking": booking, "slot": slot, "service": slot.service, "tz": host.timezone,
            "previous_starts_at": datetime.fromisoformat(delivery.payload["previous_starts_at"]),
            "slot_url": external_url("services.slot_detail", slot_id=slot.id)}
