"""The time zones a host can choose, named in words, and setting one.

Zones are IANA names (what ``zoneinfo`` and Zoom read); their names come from CLDR through
Babel, in the reader's language. The list is every zone CLDR places in a country, under its
current name (no aliases such as ``US/Pacific`` or ``Asia/Calcutta``, no ``Etc/GMT+9`` whose sign
reads backwards), that this machine's ``zoneinfo`` can load.
"""
import zoneinfo
from functools import lru_cache

from babel.core import get_global

from app import clock
from app.models import User


class UnknownZone(Exception):
    """Not a time zone a host can choose."""


@lru_cache(maxsize=1)
def choosable() -> frozenset[str]:
    """Every zone a host can choose (about 420)."""
    aliases, territories = get_global("zone_aliases"), get_global("zone_territories")
    return frozenset(zone for zone in zoneinfo.available_timezones()
                     if zone not in aliases and territories.get(zone, "001") not in ("001", "ZZ"))


@lru_cache(maxsize=4)
def _choices(locale: str) -> tuple[tuple[str, str], ...]:
    named = sorted((clock.zone_location(zone, locale), zone) for zone in choosable() if zone != clock.JAPAN_TZ)
    return ((clock.JAPAN_TZ, clock.zone_location(clock.JAPAN_TZ, locale)),
            *((zone, name) for name, zone in named))


def choices(locale: str, current: str | None = None) -> list[tuple[str, str]]:
    """``(zone, name)`` for a select: Japan first, then by name (so by country: 「アメリカ合衆国（…）時間」 together).

    :param current: the host's zone, listed too when it is not choosable (an alias set before this
        page existed), so saving the page never changes it unasked.
    """
    listed = list(_choices(locale))
    if current and current not in choosable():
        listed.insert(1, (current, clock.zone_location(current, locale)))
    return listed


def set_timezone(host: User, zone: str) -> None:
    """Show ``host`` every time in ``zone`` from now on; raise ``UnknownZone`` if it is not choosable.

    Stored times are UTC, so slots do not move: the same moments are shown in the new zone.
    Keeping the current zone is always allowed (see ``choices``).
    """
    if zone != host.timezone and zone not in choosable():
        raise UnknownZone(zone)
    host.timezone = zone
