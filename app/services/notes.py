"""Host notes (ホストからの連絡事項): the live preview of the confirmation email, and hints."""
from datetime import timedelta
from types import SimpleNamespace

from app import clock
from app.mail.render import RenderedEmail, render_kind
from app.meetings.tools import tool_for
from app.models import Service, Venue
from app.templating import has_url
from app.urls import external_url


def preview_confirmation(service: Service, notes: str) -> RenderedEmail:
    """The booking confirmation email exactly as a guest would get it, with ``notes`` as the notes.

    Nothing is saved: the service is copied into a plain object with the draft notes.
    """
    upcoming = [s for s in service.slots if s.is_open and s.starts_at > clock.now()]
    starts_at = upcoming[0].starts_at if upcoming else (clock.now() + timedelta(days=7)).replace(
        minute=0, second=0, microsecond=0)
    draft = SimpleNamespace(title=service.title, host_notes=notes, duration_minutes=service.duration_minutes)
    slot = SimpleNamespace(starts_at=starts_at, ends_at=starts_at + timedelta(minutes=service.duration_minutes))
    context = {
        "booking": SimpleNamespace(guest_name="山田 太郎"),
        "slot": slot,
        "service": draft,
        "host": service.host,
        "tz": service.host.timezone,
        "cancel_url": external_url("booking.cancel", token="sample"),
        "service_url": external_url("booking.service_page", public_id=service.public_id),
    }
    return render_kind("booking_confirmation", context, "ja")


def needs_url_hint(service: Service, notes: str, link) -> bool:
    """An online service with neither an active link to its video tool nor a URL in its notes (or
    its fixed URL): guests get no way in."""
    if service.venue == Venue.MANUAL_URL:
        return not has_url(notes)
    if service.venue == Venue.FIXED_URL:
        return not service.meeting_url and not has_url(notes)
    if tool_for(service) is not None:
        return (link is None or not link.is_active) and not has_url(notes)
    return False
