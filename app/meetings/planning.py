"""Reactions to bookings and slots, the backfill, resending, the host's start link and the pre-flight."""
from __future__ import annotations

import logging

from flask_babel import gettext as _
from sqlalchemy import select

from app import clock
from app.extensions import begin_write, db
from app.mail.outbox import cancel_pending, queue_email
from app.meetings import guest_links, reminders, retry
from app.meetings.alerts import alert_host
from app.meetings.issuing import covering_link, meeting_for, needs_meeting, spec_for, usable_meeting
from app.meetings.provider import MeetingGone, ProviderAuthError, ProviderError
from app.meetings.timing import NOTICE_GATHERS_LATE_BOOKINGS, PREFLIGHT_HORIZON, preflight_due_at, url_due_at
from app.meetings.tools import tool_named
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, MeetingFailure, MeetingStatus, Slot,
                        SlotStatus)

log = logging.getLogger(__name__)


def booking_made(booking: Booking) -> None:
    """A new booking (or a guest's move to another date): its URL email and its reminders."""
    plan_url_delivery(booking)
    reminders.plan_reminders(booking)
    guest_links.booking_made(booking)  # per-guest links: register on a meeting issued already (a move: cancel the old)


def plan_url_delivery(booking: Booking) -> bool:
    """For a new booking covered by a link: issue the meeting and schedule the URL emails."""
    if covering_link(booking) is None:
        return False
    slot = booking.slot
    meeting = meeting_for(slot.id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED:  # later guests share the issued one
        retry.queue_issue(slot.id)
    due = url_due_at(slot)
    queue_email("meeting_url", to_email=booking.guest_email, to_name=booking.guest_name,
                host_id=slot.service.host_id, booking_id=booking.id, slot_id=slot.id, due_at=due,
                dedupe_key=f"meeting_url:{booking.id}")
    _plan_host_notice(slot, due)
    return True


def _plan_host_notice(slot: Slot, due) -> None:
    """One pending notice per slot; a late booking's waits a moment for the bookings that follow it."""
    due = max(due, clock.now() + NOTICE_GATHERS_LATE_BOOKINGS)
    pending = db.session.scalar(select(Delivery.id).where(
        Delivery.slot_id == slot.id, Delivery.kind == "meeting_host_notice", Delivery.status == DeliveryStatus.PENDING))
    if pending is None:
        host = slot.service.host
        queue_email("meeting_host_notice", to_email=host.email, to_name=host.display_name, locale=host.locale,
                    host_id=host.id, slot_id=slot.id, due_at=due)


def booking_cancelled(booking: Booking) -> None:
    """After a cancellation: delete the meeting when the slot has nobody left."""
    slot = booking.slot
    if meeting_for(slot.id) is not None and not slot.confirmed_bookings:
        retry.queue_withdraw(slot.id)
    guest_links.booking_cancelled(booking)  # per-guest links: the guest's own URL stops working


def slot_moved(slot: Slot) -> None:
    """After a move: move the meeting, the pending URL emails and the reminders to the new time."""
    reminders.replan_slot(slot)
    if meeting_for(slot.id) is not None:
        retry.queue_move(slot.id)


def slot_cancelled(slot: Slot) -> None:
    """After a cancellation of the whole slot: no host notice, and the meeting goes."""
    cancel_pending(slot_id=slot.id, kind="meeting_host_notice")
    if meeting_for(slot.id) is not None:
        retry.queue_withdraw(slot.id)


def move_or_retry(slot_id: int) -> str:
    """The moving job: move now, or retry with the one policy. A move that never works leaves the
    meeting at its old time on the tool; its join URL still works, so guests are unaffected."""
    try:
        return "moved" if move_meeting(slot_id) else "skipped"
    except ProviderError as exc:
        if retry.retry_later(exc, 1, "move_meeting", slot_id):
            return "retry"
        log.warning("move of slot %s's meeting failed: %s", slot_id, exc)
        return "failed"


def move_meeting(slot_id: int) -> bool:
    """Move the slot's meeting to the slot's new time on its tool; commits."""
    meeting = meeting_for(slot_id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED:
        return False
    slot = db.session.get(Slot, slot_id)
    tool = tool_named(meeting.provider)
    found = tool.link_for(slot.service.host_id)
    if found is None or not found.is_active:
        return False
    spec, external_id, link_id = spec_for(slot), meeting.external_id, found.id
    db.session.commit()
    tool.update(link_id, external_id, spec)
    tool.record_write(link_id)
    return True


def backfill(link, bookings: list[Booking]) -> int:
    """The host chose to issue URLs for bookings made before linking too; returns how many."""
    if not bookings:
        return 0
    link.applies_from = min(link.applies_from, *(b.created_at for b in bookings))
    planned = sum(plan_url_delivery(b) for b in bookings)
    db.session.flush()
    return planned


def resend_url(booking: Booking) -> Delivery:
    """Queue the URL email to one guest again, now."""
    return queue_email("meeting_url", to_email=booking.guest_email, to_name=booking.guest_name,
                       host_id=booking.slot.service.host_id, booking_id=booking.id, slot_id=booking.slot_id,
                       payload={"resend": True})


class NoMeeting(Exception):
    """The slot has no meeting to start (message for the host)."""


def fresh_start_url(slot: Slot) -> str:
    """A link that starts the slot's meeting as its host, asked of the tool now (Zoom's expire after 2 hours)."""
    meeting = meeting_for(slot.id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED:
        raise NoMeeting(_("この開催日時にはミーティングがまだ発行されていません。"))
    tool = tool_named(meeting.provider)
    found = tool.link_for(slot.service.host_id)
    if found is None:
        raise NoMeeting(_("この開催日時にはミーティングがまだ発行されていません。"))
    if not found.is_active:
        raise NoMeeting(_("%(tool)sとの連携が切れています。連携設定から再連携してください。", tool=tool.name))
    try:
        return tool.start_link(found.id, meeting.external_id)
    except MeetingGone:
        raise NoMeeting(_("このミーティングは%(tool)s上で削除されています。参加URLのご案内の前に自動で再発行します。",
                          tool=tool.name)) from None
    except ProviderError:
        raise NoMeeting(_("%(tool)sに接続できませんでした。しばらくしてからもう一度お試しください。",
                          tool=tool.name)) from None


def run_preflights() -> int:
    """Check every slot entering its pre-flight window once: the link, then the meeting. Returns slots checked."""
    horizon = clock.now() + PREFLIGHT_HORIZON
    slots = db.session.scalars(
        select(Slot).join(Booking).where(Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now(),
                                         Slot.starts_at <= horizon, Booking.status == BookingStatus.CONFIRMED)
        .distinct()).all()
    checked = 0
    for slot in slots:
        meeting = meeting_for(slot.id)
        if preflight_due_at(slot) > clock.now() or not needs_meeting(slot) or (
                meeting is not None and meeting.preflight_at is not None):
            continue
        checked += 1
        problem = _preflight(slot)
        begin_write()
        slot = db.session.get(Slot, slot.id)
        meeting = meeting_for(slot.id)
        if meeting is not None:
            meeting.preflight_at = clock.now()
        if problem:
            alert_host(slot, problem)
        db.session.commit()
    return checked


def _preflight(slot: Slot) -> MeetingFailure | None:
    """Check the link (token, plan) and the meeting; returns the link's trouble, if any.

    A meeting that cannot be issued is given up by ``usable_meeting``, which alerts the host.
    """
    tool, found = next(filter(None, map(covering_link, slot.confirmed_bookings)), (None, None))
    if found is None:
        return None
    if not found.is_active:
        return MeetingFailure.LINK_BROKEN
    try:
        tool.check_link(found.id)
    except ProviderAuthError:
        return MeetingFailure.LINK_BROKEN
    except ProviderError:
        return None  # a hiccup: the send-time check will try again
    usable_meeting(slot)
    return None
