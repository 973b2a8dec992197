"""The only clock in the product, and the Japanese date formats.

Everything is stored in UTC; ``now()`` returns an aware UTC datetime. Tests move time with
``travel_to``/``advance`` instead of sleeping (the worker in the same process sees it too).
"""
import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.core import Locale, get_global
from babel.dates import DateTimeFormat, format_datetime, get_timezone_location, parse_pattern

DEFAULT_TZ = "Asia/Tokyo"
#: Guests are also shown the time in Japan when the host's zone is another one.
JAPAN_TZ = "Asia/Tokyo"

_offset = timedelta(0)

#: Babel patterns per locale. ``E`` is the short weekday: 土 in Japanese, Sat in English.
DATETIME_PATTERNS = {"ja": "y年M月d日(E) HH:mm", "en": "EEE, MMM d, y HH:mm"}
DATE_PATTERNS = {"ja": "y年M月d日(E)", "en": "EEE, MMM d, y"}
TIME_PATTERNS = {"ja": "HH:mm", "en": "HH:mm"}
#: How guests read a lesson time (``format_for_guests``): the zone named in words, a start and
#: end, and Japan time added when the host's zone is another one.
ZONED_PATTERNS = {"ja": "{zone} {when}", "en": "{when} {zone}"}
RANGE_PATTERNS = {"ja": "{start}〜{end}", "en": "{start}–{end}"}
#: The end of a range that finishes on a later day than it starts, after midnight (「翌00:30」); one
#: that finishes at the midnight ending its first day is 「24:00」 (「23:00〜00:00」 reads as a
#: range that ends before it starts).
NEXT_DAY_PATTERNS = {"ja": "翌{time}", "en": "{time} (next day)"}
MIDNIGHT_END = "24:00"
ALSO_IN_JAPAN_PATTERNS = {"ja": "（{japan}）", "en": " ({japan})"}


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


#: Babel fields that depend on the local date alone, and on the local hour and minute alone.
_DATE_FIELDS = frozenset({"y", "yyyy", "M", "MM", "MMM", "MMMM", "d", "dd", "E", "EE", "EEE", "EEEE"})
_TIME_FIELDS = {"H": "{0}", "HH": "{0:02d}", "m": "{1}", "mm": "{1:02d}"}
_FIELD = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=None)
def _compiled(pattern: str, lang: str) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]] | None:
    """A pattern as Babel parses it (``%(y)s年%(M)s月…``), with its date and time fields.

    None when the pattern has a field that depends on more than the date or the time (a zone
    name, say): such a pattern is left to Babel on every call.
    """
    template = parse_pattern(pattern).format
    fields = set(_FIELD.findall(template))
    if not fields <= _DATE_FIELDS | _TIME_FIELDS.keys():
        return None
    return (template, tuple(sorted(fields & _DATE_FIELDS)),
            tuple((f, _TIME_FIELDS[f]) for f in sorted(fields & _TIME_FIELDS.keys())))


@lru_cache(maxsize=4096)
def _date_fields(pattern: str, lang: str, day: date) -> dict[str, str]:
    """Babel's text for the date fields of ``pattern`` on ``day`` (年, 月, 日, weekday …)."""
    _, fields, _ = _compiled(pattern, lang)
    babel_format = DateTimeFormat(datetime(day.year, day.month, day.day), Locale.parse(lang))
    return {field: babel_format[field] for field in fields}


def _format(moment: datetime, patterns: dict, tz_name: str, locale: str) -> str:
    """Babel's ``format_datetime`` of the pattern, computed once per local date.

    Babel resolves the locale data for every field of every call; a host page
    shows hundreds of times on a few dates, so the date part is cached per (pattern, locale, day)
    and the hour and minute are filled in directly (Babel writes them as plain ASCII digits).
    """
    lang = locale if locale in patterns else "ja"
    pattern = patterns[lang]
    compiled = _compiled(pattern, lang)
    if compiled is None:
        return format_datetime(as_utc(moment), pattern, tzinfo=ZoneInfo(tz_name), locale=lang)
    template, _, time_fields = compiled
    local = as_utc(moment).astimezone(ZoneInfo(tz_name))
    values = dict(_date_fields(pattern, lang, local.date()))
    for field, spec in time_fields:
        values[field] = spec.format(local.hour, local.minute)
    return template % values


def format_datetime_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``2026年6月20日(土) 10:00`` in the host's time zone."""
    return _format(moment, DATETIME_PATTERNS, tz_name, locale)


def format_date_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``2026年6月20日(土)`` in the host's time zone."""
    return _format(moment, DATE_PATTERNS, tz_name, locale)


def format_time_local(moment: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``10:00`` in the host's time zone."""
    return _format(moment, TIME_PATTERNS, tz_name, locale)


def canonical_zone(tz_name: str) -> str:
    """The zone's current IANA name (CLDR's aliases: ``Asia/Calcutta`` → ``Asia/Kolkata``, ``Japan`` → Tokyo)."""
    return get_global("zone_aliases").get(tz_name, tz_name)


def is_japan_time(tz_name: str) -> bool:
    """True for Asia/Tokyo (and its aliases)."""
    return canonical_zone(tz_name) == JAPAN_TZ


@lru_cache(maxsize=1024)
def zone_label(tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """A time zone in words: 「日本時間」, 「ロサンゼルス時間」, "Japan Time", "Los Angeles Time".

    CLDR's names (through Babel). A zone that is its country's only one is named after the
    country (日本時間, 韓国時間, "United Kingdom Time"); one of several after its city, where CLDR
    would write 「アメリカ合衆国（ロサンゼルス）時間」 (too long for a line about a lesson; the
    account page's list shows that long form, see ``zone_location``).
    """
    lang = locale if locale in DATETIME_PATTERNS else "ja"
    zone = canonical_zone(tz_name)
    territory = get_global("zone_territories").get(zone)
    if len(get_global("territory_zones").get(territory, ())) == 1:
        return get_timezone_location(zone, lang)
    city = get_timezone_location(zone, lang, return_city=True)
    return Locale.parse(lang).zone_formats["region"] % city


@lru_cache(maxsize=1024)
def zone_location(tz_name: str, locale: str = "ja") -> str:
    """CLDR's full name of a zone: 「日本時間」, 「アメリカ合衆国（ロサンゼルス）時間」 (for lists of zones)."""
    return get_timezone_location(canonical_zone(tz_name), locale if locale in DATETIME_PATTERNS else "ja")


def format_end_local(start: datetime, end: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """The end time of a range from ``start``: ``11:00``; ``24:00`` at the midnight that ends the
    start's day; ``翌00:30`` (``00:30 (next day)``) on a later day."""
    lang = locale if locale in DATETIME_PATTERNS else "ja"
    start_day = to_local(start, tz_name).date()
    local_end = to_local(end, tz_name)
    days = (local_end.date() - start_day).days
    if days == 1 and (local_end.hour, local_end.minute) == (0, 0):
        return MIDNIGHT_END
    text = format_time_local(end, tz_name, lang)
    return NEXT_DAY_PATTERNS[lang].format(time=text) if days >= 1 else text


def format_range_local(start: datetime, end: datetime | None, tz_name: str = DEFAULT_TZ, locale: str = "ja") -> str:
    """``2026年6月20日(土) 23:00〜24:00`` in ``tz_name`` (the start alone when ``end`` is None)."""
    lang = locale if locale in DATETIME_PATTERNS else "ja"
    when = format_datetime_local(start, tz_name, lang)
    if end is None:
        return when
    return RANGE_PATTERNS[lang].format(start=when, end=format_end_local(start, end, tz_name, lang))


_datetime_range = format_range_local


def guest_time_parts(start: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja", end: datetime | None = None,
                     *, with_zone: bool = True) -> tuple[str, str]:
    """``format_for_guests`` in two parts: the time in the host's zone, and the Japan time added
    (``（日本時間 …）``, or "" for a host in Japan), for pages that lay them out on two lines."""
    lang = locale if locale in DATETIME_PATTERNS else "ja"
    when = _datetime_range(start, end, tz_name, lang)
    if with_zone:
        when = ZONED_PATTERNS[lang].format(zone=zone_label(tz_name, lang), when=when)
    if is_japan_time(tz_name):
        return when, ""
    japan = ZONED_PATTERNS[lang].format(zone=zone_label(JAPAN_TZ, lang),
                                        when=_datetime_range(start, end, JAPAN_TZ, lang))
    return when, ALSO_IN_JAPAN_PATTERNS[lang].format(japan=japan)


def format_for_guests(start: datetime, tz_name: str = DEFAULT_TZ, locale: str = "ja", end: datetime | None = None,
                      *, with_zone: bool = True) -> str:
    """A lesson time as guests read it: in the host's zone, named in words, and in Japan time too.

    ``ロサンゼルス時間 2026年6月20日(土) 10:00〜11:00（日本時間 2026年6月21日(日) 02:00〜03:00）``;
    ``日本時間 2026年6月20日(土) 10:00〜11:00`` for a host in Japan. Never a raw IANA name.

    :param end: the end time, shown as a range when given.
    :param with_zone: False where the page names the host's zone already (a list under a heading):
        the time alone, still followed by Japan time when that differs.
    """
    return "".join(guest_time_parts(start, tz_name, locale, end, with_zone=with_zone))
