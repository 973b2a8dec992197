"""When the URL emails go out and what waits on what: the one place for these durations.

Templates read ``URL_LEAD_HOURS`` (the global ``url_lead_hours``), never a written "24".
"""
from datetime import datetime, timedelta

from app import clock

#: The URL email goes out this long before the start by default (later bookings get it at once);
#: a service may choose another lead (``services.url_lead_hours``, one of ``URL_LEAD_CHOICES``).
URL_LEAD = timedelta(hours=24)
#: The same, as the whole hours guest and host texts say (「開催24時間前」) where no service is meant.
URL_LEAD_HOURS = int(URL_LEAD / timedelta(hours=1))
#: The leads a host may choose for a service's URL email, in hours.
URL_LEAD_CHOICES = (24, 48, 72)
#: The reminders a host may add to a service's schedule, in minutes before the start.
REMINDER_CHOICES = (180, 60, 10)
#: The pre-flight check runs this much before the URL emails, while there is time to relink.
PREFLIGHT_MARGIN = timedelta(hours=3)
PREFLIGHT_LEAD = URL_LEAD + PREFLIGHT_MARGIN
#: The longest lead any service can have, plus the margin: how far ahead the pre-flight sweep looks.
PREFLIGHT_HORIZON = timedelta(hours=max(URL_LEAD_CHOICES)) + PREFLIGHT_MARGIN
#: How long a URL email waits for a meeting before it looks again, by cause (a relink, or the
#: meeting being issued, sends it at once; a daily limit waits for its reset). Keys are
#: ``MeetingFailure`` values.
WAIT_FOR_MEETING = {"link_broken": timedelta(hours=1), "zoom_refused": timedelta(hours=1)}
WAIT_FOR_MEETING_DEFAULT = timedelta(minutes=10)
#: The last look for a meeting is this long before the start; after the start the URL email is dropped.
LAST_LOOK_BEFORE_START = timedelta(minutes=5)
#: The host notice waits this long at most for its guests' URL emails to go out before it tells.
NOTICE_WAITS_FOR_GUESTS = timedelta(minutes=10)
#: A host notice about late bookings (within the URL lead: their URL emails go at once) is due this
#: much after the first of them, so guests booking the same date in a burst make one notice, not one each.
NOTICE_GATHERS_LATE_BOOKINGS = timedelta(minutes=2)
#: A meeting the tool would not delete because it was running is deleted this long after the slot's end.
AFTER_END = timedelta(minutes=10)
#: A URL email whose meeting could not be checked (the tool did not answer) waits and asks again
#: for this long after it fell due; then it goes out with the URL we have (the guest's ``/j/`` link
#: follows the meeting if it is re-issued later).
CHECK_PATIENCE = timedelta(minutes=30)


def url_lead(service) -> timedelta:
    """How long before the start this service's URL email goes out."""
    return timedelta(hours=service.url_lead_hours or URL_LEAD_HOURS)


def url_due_at(slot) -> datetime:
    """When the URL email of a booking of this slot is due."""
    return max(clock.now(), slot.starts_at - url_lead(slot.service))


def preflight_due_at(slot) -> datetime:
    """When the slot's pre-flight check is due: the margin before its URL emails."""
    return slot.starts_at - url_lead(slot.service) - PREFLIGHT_MARGIN


def reminder_minutes(service) -> list[int]:
    """The service's reminders, as minutes before the start, latest-sent last (e.g. ``[60, 10]``).

    Only online services have them (the guest's lesson page is what they point to); a value not
    among the choices (edited by hand in the database) is ignored rather than trusted.
    """
    if not service.is_online:
        return []
    chosen = {int(part) for part in (service.reminder_minutes or "").split(",") if part.strip().isdigit()}
    return sorted(chosen & set(REMINDER_CHOICES), reverse=True)


def reminder_due_at(slot, minutes: int) -> datetime:
    """When the reminder sent ``minutes`` before the slot's start is due."""
    return slot.starts_at - timedelta(minutes=minutes)
