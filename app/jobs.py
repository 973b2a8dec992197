"""Every RQ entry point. Each takes ids, loads fresh state and calls one domain function.

Jobs raise on failure so RQ records it; the outbox keeps its own retry state, so a job that
dies half-way is finished by the scheduler's sweep.
"""
from app.mail import outbox
from app.zoom import link


def send_deliveries(delivery_ids: list[int]) -> int:
    """Send the given outbox rows now (enqueued after the commit that wrote them)."""
    return outbox.send_deliveries(delivery_ids)


def send_due_mail() -> int:
    """Sweep the outbox and send every due row."""
    return outbox.send_due()


def zoom_deauthorized(zoom_user_id: str) -> bool:
    """Zoom's ``app_deauthorized`` webhook: forget the host's link."""
    return link.deauthorize(zoom_user_id)


def zoom_meeting_deleted(zoom_meeting_id: int) -> bool:
    """Zoom's ``meeting.deleted`` webhook: mark the meeting gone."""
    return link.meeting_deleted_on_zoom(zoom_meeting_id)
