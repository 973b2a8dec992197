"""The only clock in the product, and the Japanese date formats.

Everything is stored in UTC; ``now()`` returns an aware UTC datetime. Tests move time with
``travel_to``/``advance`` instead of sleeping (the worker in the same process sees it too).
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

DEFAULT_TZ = "Asia/Tokyo"

_offset = timedelta(0)

#: Babel patterns per locale. ``E`` is the short weekday: 土 in Japanese, Sat in English.
DATETIME_PATTERNS = {"ja": "y年M月d日(E) HH:mm", "en": "EEE, MMM d, y HH:mm"}
DATE_PATTERNS = {"ja": "y年M月d日(E)", "en": "EEE, MMM d, y"}
TIME_PATTERNS = {"ja": "HH:mm", "en": "HH:mm"}


def now() -> datetime:
    """Current time, aware, in UTC (shifted when a test travels in time)."""
    return datetime.now(timezone.utc) + _offset


def travel_to(moment: datetime) -> None:
    """Make ``now()`` return ``moment`` from here on (tests only)."""
    global _offset
    _offset = moment - datetime.now(timezone.utc)


def advance(delta: timedelta) -> None:
    """Move the clock forward by ``delta`` (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Back to real time."""
    global _offset
    _offset = timedelta(0)


def as_utc(moment: datetime) -> datetime:
    """Normalise a datetime to aware UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def local_to_utc(naive_local: datetime, tz_name: str = DEFAULT_TZ) -> datetime:
    """Interpret a naive wall-clock time in ``tz_name`` and return it in UTC."""
    return naive_local.replace(tzinfo=ZoneInfo(tz_name)).astimezone(timezone.utc)


def to_local(moment: datetime, tz_name: str = DEFAULT_TZ) -> datetime:
    """Convert a UTC datetime to the given time zone."""
    return as_utc(moment).astimezone(ZoneInfo(tz_name))


def _format(moment: datetime, patterns: dict, tz_name: str, locale: str) -> str:
    lang = locale if locale in patterns else "ja"
    return format_datetime(as_utc(moment), patterns[lang], tzinfo=ZoneInfo(tz_name), locale=lang)


def format_datetime_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``2026年6月20日(土) 10:00`` in the host's time zone."""
    return _format(moment, DATETIME_PATTERNS, tz_name, locale)


def format_date_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``2026年6月20日(土)`` in the host's time zone."""
    return _format(moment, DATE_PATTERNS, tz_name, locale)


def format_time_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``10:00`` in the host's time zone."""
    return _format(moment, TIME_PATTERNS, tz_name, locale)
