"""「まとめて追加」: a weekly repeat of a service's slot (every Tuesday 20:00 for 8 weeks) in one go.

``plan_weekly`` lists the dates (in the host's time zone, so 20:00 stays 20:00 across a DST change)
and flags each one that cannot or should not be added: in the past, already a slot of this service,
or overlapping (by time range, with the services' durations) an open slot of any of the host's
services. ``add_planned`` adds the chosen dates in the caller's transaction: all or nothing.
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import Service, Slot, SlotStatus
from app.services import slots

#: The most dates one repeat adds (a year of weekly dates).
MAX_WEEKS = 52
#: Reasons a date is flagged: ``past`` and ``exists`` cannot be added; ``overlap`` can, when chosen.
PAST, EXISTS, OVERLAP = "past", "exists", "overlap"
BLOCKING = frozenset({PAST, EXISTS})


@dataclass
class PlannedDate:
    """One date of the repeat: its UTC start and end, and why it is flagged (None: fine)."""

    starts_at: datetime
    ends_at: datetime
    reason: str | None = None
    #: For ``overlap``: the slots it overlaps (id, service title, start, end).
    clashes: list = field(default_factory=list)

    @property
    def key(self) -> str:
        """What the confirm form sends for this date: its UTC start (minute precision)."""
        return self.starts_at.strftime("%Y%m%dT%H%MZ")

    @property
    def addable(self) -> bool:
        return self.reason not in BLOCKING

    @property
    def chosen_by_default(self) -> bool:
        return self.reason is None


def first_date(start: date, weekday: int | None) -> date:
    """The first ``weekday`` (0 = Monday) on or after ``start`` (``start`` itself when None)."""
    if weekday is None:
        return start
    return start + timedelta(days=(weekday - start.weekday()) % 7)


def plan_weekly(service: Service, tz_name: str, start: date, at: time, count: int,
                weekday: int | None = None) -> list[PlannedDate]:
    """``count`` weekly dates of ``service`` at local time ``at`` from the first ``weekday`` on or
    after ``start``, each flagged as described in the module docstring."""
    if not 1 <= count <= MAX_WEEKS:
        raise ValueError(f"count must be 1..{MAX_WEEKS}")
    first = first_date(start, weekday)
    duration = timedelta(minutes=service.duration_minutes)
    planned = []
    for week in range(count):
        starts_at = clock.local_to_utc(datetime.combine(first + timedelta(weeks=week), at), tz_name)
        planned.append(PlannedDate(starts_at, starts_at + duration))
    _flag(service, planned)
    return planned


def _flag(service: Service, planned: list[PlannedDate]) -> None:
    now = clock.now()
    # The host's open slots that could overlap: none lasts over a day (durations are at most 1440 min).
    rows = db.session.execute(
        select(Slot.id, Slot.service_id, Slot.starts_at, Service.duration_minutes, Service.title)
        .join(Slot.service)
        .where(Service.host_id == service.host_id, Slot.status == SlotStatus.OPEN,
               Slot.starts_at > planned[0].starts_at - timedelta(days=1),
               Slot.starts_at < planned[-1].ends_at)).all()
    for date_ in planned:
        if date_.starts_at <= now:
            date_.reason = PAST
            continue
        for row in rows:
            other_start = clock.as_utc(row.starts_at)
            other_end = other_start + timedelta(minutes=row.duration_minutes)
            if row.service_id == service.id and other_start == date_.starts_at:
                date_.reason, date_.clashes = EXISTS, []
                break
            if other_start < date_.ends_at and date_.starts_at < other_end:
                date_.reason = OVERLAP
                date_.clashes.append((row.id, row.title, other_start, other_end))


class NothingChosen(Exception):
    """No date of the repeat was chosen (or none of the chosen ones can be added)."""


def add_planned(service: Service, planned: list[PlannedDate], chosen: set[str]) -> tuple[list[Slot], list[PlannedDate]]:
    """Add the ``chosen`` dates (by ``PlannedDate.key``) that can be added; return the slots added
    and the dates skipped (not chosen, or flagged ``past``/``exists``).

    Flushes only: the caller commits, or rolls back on any exception (nothing is half-added).

    :raises NothingChosen: when nothing would be added.
    :raises slots.SlotInPast, slots.SlotTaken: a date became past or taken meanwhile.
    """
    to_add = [d for d in planned if d.key in chosen and d.addable]
    if not to_add:
        raise NothingChosen()
    added = [slots.add_slot(service, d.starts_at) for d in to_add]
    skipped = [d for d in planned if d not in to_add]
    return added, skipped
