"""The host's contact address, notices and language: what guests reply to, which emails the host
gets, and the language of the host's pages and emails."""
from app.auth.accounts import normalize_email
from app.models import User

#: The languages a host can choose, with their own names (as language pickers show them).
LANGUAGES = (("ja", "日本語"), ("en", "English"))


class UnknownLanguage(Exception):
    """Not one of ``LANGUAGES``."""


def set_contact(host: User, contact_email: str, show_publicly: bool) -> None:
    """Where guests' replies go (the login address when empty or the same), and whether the
    public booking pages show it."""
    address = normalize_email(contact_email or "")
    host.contact_email = "" if address == host.email else address
    host.show_contact_publicly = bool(show_publicly)


def set_notifications(host: User, bookings: bool, cancellations: bool, digest: bool) -> None:
    """Which host notices are sent: one per new booking, one per cancellation, or an hourly digest."""
    host.notify_bookings = bool(bookings)
    host.notify_cancellations = bool(cancellations)
    host.notify_digest = bool(digest)


def set_language(host: User, locale: str) -> None:
    """The language of the host's pages and of the emails the host receives."""
    if locale not in dict(LANGUAGES):
        raise UnknownLanguage(locale)
    host.locale = locale
