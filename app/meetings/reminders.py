"""A booking's reminders (「まもなく開始」): planned from the service's schedule, re-planned when
the lesson moves, the guest moves, or the host changes the schedule.

The URL email and the reminders share the timing code (``timing.url_due_at``,
``timing.reminder_due_at``) and the outbox: there is no second scheduler. Each reminder is
rendered at send time (``emails``), so it reads the lesson as it is then; one whose lesson has
started, moved or been cancelled, or that the schedule no longer has, is dropped there too (a
re-plan that never ran cannot make a reminder lie).
"""
from __future__ import annotations

from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.mail.outbox import queue_email
from app.meetings import switch
from app.meetings.timing import reminder_due_at, reminder_minutes, url_due_at
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Service, Slot, SlotStatus

KIND = "lesson_reminder"


def _key(booking: Booking, minutes: int, due) -> str:
    # The due time is in the key: after a move the new reminder is a new email (the old one,
    # sent or not, keeps its own).
    return f"{KIND}:{booking.id}:{minutes}:{int(clock.as_utc(due).timestamp())}"


def plan_reminders(booking: Booking) -> int:
    """Make the booking's pending reminders match its service's schedule and its lesson's time.

    Reminders still ahead are queued (once each); pending ones the schedule or the time no longer
    has are cancelled. Returns how many were queued.
    """
    slot = booking.slot
    now = clock.now()
    wanted = {}
    if booking.is_confirmed and slot.is_open:
        for minutes in reminder_minutes(slot.service):
            due = reminder_due_at(slot, minutes)
            if due > now:
                wanted[_key(booking, minutes, due)] = (minutes, due)
    existing = dict(db.session.execute(select(Delivery.dedupe_key, Delivery.status).where(
        Delivery.booking_id == booking.id, Delivery.kind == KIND)).all())
    stale = [key for key, status in existing.items() if status == DeliveryStatus.PENDING and key not in wanted]
    if stale:
        db.session.execute(update(Delivery).where(Delivery.dedupe_key.in_(stale))
                           .values(status=DeliveryStatus.CANCELLED).execution_options(synchronize_session=False))
    queued = 0
    for key, (minutes, due) in wanted.items():
        if key in existing:
            continue  # planned (or sent) already for this very time
        queue_email(KIND, to_email=booking.guest_email, to_name=booking.guest_name, host_id=slot.service.host_id,
                    booking_id=booking.id, slot_id=slot.id, due_at=due, dedupe_key=key,
                    payload={"minutes": minutes, "starts_at": clock.as_utc(slot.starts_at).isoformat()})
        queued += 1
    return queued


def replan_slot(slot: Slot) -> None:
    """After the lesson moved (or its service's schedule changed): the URL emails' due time and
    every guest's reminders follow."""
    db.session.execute(
        update(Delivery).where(Delivery.slot_id == slot.id, Delivery.kind.in_(switch.URL_EMAIL_KINDS),
                               Delivery.status == DeliveryStatus.PENDING)
        .values(due_at=url_due_at(slot)).execution_options(synchronize_session=False))
    for booking in slot.confirmed_bookings:
        plan_reminders(booking)


#: Slots re-planned per transaction when a service's schedule changes (the job commits between
#: chunks so no transaction holds the outbox for long).
REPLAN_CHUNK = 50


def replan_service(service_id: int) -> int:
    """After the host changed the service's schedule: re-plan every upcoming booked lesson. Commits;
    returns how many lessons were re-planned."""
    done, after = 0, 0
    while True:
        ids = db.session.scalars(
            select(Slot.id).join(Booking).where(
                Slot.service_id == service_id, Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now(),
                Booking.status == BookingStatus.CONFIRMED, Slot.id > after)
            .distinct().order_by(Slot.id).limit(REPLAN_CHUNK)).all()
        if not ids:
            return done
        for slot in db.session.scalars(select(Slot).where(Slot.id.in_(ids))):
            replan_slot(slot)
        db.session.commit()
        done += len(ids)
        after = ids[-1]


def schedule_changed(before: dict, service: Service) -> bool:
    """Whether saving the service changed when its lesson-day emails go out."""
    return (before["url_lead_hours"] != service.url_lead_hours
            or before["reminder_minutes"] != reminder_minutes(service))


def schedule_of(service: Service) -> dict:
    """What ``schedule_changed`` compares, read before the form is applied."""
    return {"url_lead_hours": service.url_lead_hours, "reminder_minutes": reminder_minutes(service)}
