"""Every RQ entry point. Each takes ids, loads fresh state and calls one domain function.

Jobs raise on failure so RQ records it; the outbox keeps its own retry state, so a job that
dies half-way is finished by the scheduler's sweep.
"""
from app.mail import outbox
from app.meetings import attendance, guest_links, issuing, planning, reminders, withdraw
from app.zoom import link


def send_deliveries(delivery_ids: list[int]) -> int:
    """Send the given outbox rows now (enqueued after the commit that wrote them)."""
    return outbox.send_deliveries(delivery_ids)


def send_due_mail() -> int:
    """Sweep the outbox: send due rows batch by batch (the scheduler runs one sweep per worker)."""
    return outbox.send_due()


def zoom_deauthorized(zoom_user_id: str) -> bool:
    """Zoom's ``app_deauthorized`` webhook: forget the host's link."""
    return link.deauthorize(zoom_user_id)


def zoom_meeting_deleted(zoom_meeting_id: int) -> bool:
    """Zoom's ``meeting.deleted`` webhook: mark the meeting gone."""
    return link.meeting_deleted_on_zoom(zoom_meeting_id)


def issue_meeting(slot_id: int) -> str:
    """Issue the slot's meeting on its video tool (or schedule the retry that fits the failure)."""
    return issuing.issue_or_defer(slot_id)


def withdraw_meeting(slot_id: int) -> str:
    """Delete the slot's meeting on its tool (slot cancelled or empty, tool OFF), or schedule the retry."""
    return withdraw.withdraw_or_retry(slot_id)


def move_meeting(slot_id: int) -> str:
    """Move the slot's meeting to the slot's new time (or schedule the retry)."""
    return planning.move_or_retry(slot_id)


def run_preflights() -> int:
    """Pre-flight checks of slots entering the pre-flight window."""
    return planning.run_preflights()


def replan_lesson_emails(service_id: int) -> int:
    """The host changed the service's schedule: re-plan the URL emails and reminders of its booked lessons."""
    return reminders.replan_service(service_id)


def record_attendance(event) -> str:
    """A participant joined or left a meeting (``attendance.ParticipantEvent``, from a webhook)."""
    return attendance.record(event)


def meeting_ended(event) -> int:
    """A meeting ended (``attendance.MeetingEnded``): close open stays, mark the absentees."""
    return attendance.meeting_ended(event)


def finalize_attendance() -> int:
    """Mark the absentees of meetings that ended without the tool saying so (the scheduler's minute)."""
    return attendance.finalize_due()


def settle_guest_link(booking_id: int) -> str:
    """Per-guest links: register the guest on their date's meeting, or cancel a registration they no longer need."""
    return guest_links.settle_or_retry(booking_id)


def settle_guest_links(slot_id: int) -> str:
    """Per-guest links: register every guest of the slot's meeting just issued with registration."""
    return guest_links.settle_slot_or_retry(slot_id)
