"""Jinja filters and globals: host-time-zone dates in Japanese formats, safe links in notes."""
import re

from flask import current_app
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup, escape

from app import clock

_URL = re.compile(r"https?://[^\s<>\"'　]+")


def _tz(tz_name: str | None) -> str:
    if tz_name:
        return tz_name
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.timezone
    return clock.DEFAULT_TZ


def local_datetime(moment, tz_name: str | None = None) -> str:
    """``2026年6月20日(土) 10:00`` in the host's time zone."""
    return clock.format_datetime_local(moment, _tz(tz_name), str(get_locale() or "ja"))


def local_date(moment, tz_name: str | None = None) -> str:
    """``2026年6月20日(土)`` in the host's time zone."""
    return clock.format_date_local(moment, _tz(tz_name), str(get_locale() or "ja"))


def local_time(moment, tz_name: str | None = None) -> str:
    """``10:00`` in the host's time zone."""
    return clock.format_time_local(moment, _tz(tz_name), str(get_locale() or "ja"))


def linkify(text: str) -> Markup:
    """Escape plain text, turn URLs into links and line breaks into ``<br>``."""
    parts, last = [], 0
    for match in _URL.finditer(text or ""):
        parts.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        parts.append(Markup(f'<a href="{url}" rel="noopener noreferrer">{url}</a>'))
        last = match.end()
    parts.append(escape((text or "")[last:]))
    return Markup("").join(parts).replace("\n", Markup("<br>\n"))


def has_url(text: str) -> bool:
    """True when the text contains an http(s) URL."""
    return bool(_URL.search(text or ""))


def init_app(app) -> None:
    """Register the filters and template globals."""
    app.jinja_env.filters.update(
        local_datetime=local_datetime, local_date=local_date, local_time=local_time, linkify=linkify
    )
    app.jinja_env.globals.update(
        # Anything but the real Zoom is the sandbox (the local emulator): say so on every page.
        zoom_sandbox=lambda: not current_app.config["ZOOM_OAUTH_BASE_URL"].startswith("https://zoom.us"),
        now=clock.now,
        get_locale=get_locale,
    )
