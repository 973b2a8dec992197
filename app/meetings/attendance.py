"""Attendance from the video tool's participant events (provider-neutral).

A tool that reports who joined and left a meeting (Zoom's participant webhooks) hands each event
over as a ``ParticipantEvent``; this module keeps one ``ParticipantSession`` per stay, matches it
to a guest of the slot and recomputes the guests' 出席 / 欠席 / 不明 and minutes from the sessions.

Events arrive late, twice and out of order (Zoom retries for 85 minutes, a left before its
joined), so everything is an upsert keyed by the stay and every figure is recomputed from the
stored sessions, never added up event by event. Events of one meeting are applied one at a time
(its row is locked; on SQLite the write lock does it), so several workers never lose a stay.

A guest becomes 欠席 only once the meeting is over (the tool's ``ended`` event, or the slot's end
plus ``FINALIZE_AFTER``) *and* the meeting reported at least one participant (the host's own
join counts): a meeting that reported nobody, because it never started or the tool does not send
participant events (Google Meet), leaves its guests 不明. A value the host set by hand is never
changed by events.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select

from app import clock
from app.extensions import begin_write, db
from app.models import Booking, BookingStatus, Meeting, ParticipantSession, Slot, SlotStatus

PRESENT = "present"
ABSENT = "absent"
#: What the host may set by hand; ``AUTO`` hands the guest back to the events.
HOST_CHOICES = (PRESENT, ABSENT)
AUTO = "auto"

#: ``ParticipantSession.matched_by`` values besides the guest matches.
BY_REGISTRANT, BY_EMAIL, BY_NAME = "registrant", "email", "name"
#: The meeting's host (not a guest), and the row that records one run of the meeting (see ``_instance_key``).
HOST, MEETING_RUN = "host", "meeting"
#: Rows that are not a participant the host should read about.
_NOT_PARTICIPANTS = (HOST, MEETING_RUN)

#: A meeting the tool never said ended is taken as over this long after the slot's end (Zoom's
#: last retry of an event comes 85 minutes after it; a late join still turns 欠席 into 出席).
FINALIZE_AFTER = timedelta(minutes=30)
#: The sweep looks at slots that ended at most this long ago.
FINALIZE_LOOKBACK = timedelta(days=2)
#: RQ's retries of an event's job that failed on the database (a deadlock PostgreSQL broke, a lost
#: connection): applying an event again is harmless, and Zoom itself never sends it again once
#: the endpoint has answered 204.
EVENT_RETRY = Retry(max=3, interval=[5, 30, 120])


@dataclass(frozen=True)
class ParticipantEvent:
    """One participant joining or leaving, as any tool reports it.

    :param meeting_external_id: the tool's id of the meeting (``Meeting.external_id``).
    :param instance: the run of the meeting (Zoom's meeting ``uuid``: a new one each time it starts).
    :param participant_key: what identifies this stay within the run (Zoom: ``participant_uuid``,
        else ``user_id``); a person who leaves and rejoins has a new one.
    :param kind: ``"joined"`` or ``"left"``.
    :param at: when it happened (aware UTC).
    :param is_host: the meeting's host (never a guest).
    """

    provider: str
    meeting_external_id: str
    instance: str
    participant_key: str
    kind: str
    at: datetime
    registrant_id: str = ""
    email: str = ""
    name: str = ""
    is_host: bool = False


@dataclass(frozen=True)
class MeetingEnded:
    """The tool says one run of the meeting ended."""

    provider: str
    meeting_external_id: str
    instance: str
    started_at: datetime | None
    ended_at: datetime


def normalised_name(name: str) -> str:
    """A display name as compared with a guest's name: NFKC (全角→半角), no spaces, case-folded."""
    return "".join(unicodedata.normalize("NFKC", name or "").split()).casefold()


def _session_key(instance: str, participant_key: str) -> str:
    return f"{instance}:{participant_key}"


def _instance_key(instance: str) -> str:
    """The row that records when one run of the meeting started and ended (its ``ended`` event):
    a join that arrives after the end is closed at it."""
    return f"{MEETING_RUN}:{instance}"


def _meeting_for_update(provider: str, external_id: str) -> Meeting | None:
    """The newest meeting with this tool id, its row locked so that its events apply one at a time."""
    meeting_id = db.session.scalar(select(Meeting.id).where(Meeting.provider == provider,
                                                            Meeting.external_id == str(external_id))
                                   .order_by(Meeting.id.desc()).limit(1))
    if meeting_id is None:
        return None
    return db.session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)


def _session_for_update(meeting: Meeting, key: str) -> ParticipantSession:
    """The session row for ``key``, inserted if missing (``ON CONFLICT DO NOTHING``, so a racing
    insert of the same stay never fails), then read locked."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.session.execute(insert(ParticipantSession).values(meeting_id=meeting.id, session_key=key)
                       .on_conflict_do_nothing(index_elements=["meeting_id", "session_key"]))
    return db.session.scalars(select(ParticipantSession).where(
        ParticipantSession.meeting_id == meeting.id, ParticipantSession.session_key == key)
        .with_for_update().execution_options(populate_existing=True)).one()


def record(event: ParticipantEvent) -> str:
    """Apply one joined/left event: upsert its stay, match it, recompute its guest. Commits.

    Returns what happened (``"unknown meeting"``, ``"host"``, ``"matched"``, ``"unmatched"``),
    for the job's log.
    """
    begin_write()
    meeting = _meeting_for_update(event.provider, event.meeting_external_id)
    if meeting is None:  # Zoom sends every meeting of the account: not one of ours
        db.session.commit()
        return "unknown meeting"
    session = _session_for_update(meeting, _session_key(event.instance, event.participant_key))
    if event.kind == "joined":
        session.joined_at = event.at if session.joined_at is None else min(session.joined_at, event.at)
    else:
        session.left_at = event.at if session.left_at is None else max(session.left_at, event.at)
    session.registrant_id = session.registrant_id or event.registrant_id[:64]
    session.email = session.email or event.email.strip().lower()[:254]
    session.user_name = session.user_name or event.name.strip()[:200]
    if session.left_at is None:
        run = db.session.scalar(select(ParticipantSession).where(
            ParticipantSession.meeting_id == meeting.id,
            ParticipantSession.session_key == _instance_key(event.instance)))
        if run is not None and run.left_at is not None:  # joined after the meeting's end arrived
            session.left_at = max(run.left_at, session.joined_at or run.left_at)
    if event.is_host:
        session.matched_by, session.booking_id = HOST, None
        db.session.commit()
        return "host"
    if session.booking_id is None:
        _match(session, meeting.slot_id)
    if session.booking_id is not None:
        db.session.flush()
        _recompute(db.session.get(Booking, session.booking_id), finished=False)
    db.session.commit()
    return "matched" if session.booking_id is not None else "unmatched"


def meeting_ended(event: MeetingEnded) -> int:
    """The tool says the meeting ended: close open stays at its end, mark absentees. Commits.

    Returns how many guests' attendance was recomputed.
    """
    begin_write()
    meeting = _meeting_for_update(event.provider, event.meeting_external_id)
    if meeting is None:
        db.session.commit()
        return 0
    run = _session_for_update(meeting, _instance_key(event.instance))
    run.matched_by, run.booking_id = MEETING_RUN, None
    run.joined_at = run.joined_at or event.started_at
    run.left_at = event.ended_at
    prefix = event.instance + ":"
    for stay in db.session.scalars(select(ParticipantSession).where(
            ParticipantSession.meeting_id == meeting.id, ParticipantSession.left_at.is_(None))):
        if stay.session_key.startswith(prefix):
            stay.left_at = max(event.ended_at, stay.joined_at or event.ended_at)
    db.session.flush()
    changed = _finalize(meeting)
    db.session.commit()
    return changed


def _finalize(meeting: Meeting) -> int:
    """The meeting is over: try once more to match unmatched stays (a guest may have pressed
    参加する after joining), then recompute every guest, absentees included."""
    for stay in db.session.scalars(select(ParticipantSession).where(
            ParticipantSession.meeting_id == meeting.id, ParticipantSession.booking_id.is_(None),
            ParticipantSession.matched_by == "")):
        _match(stay, meeting.slot_id)
    db.session.flush()
    reported = _reported(meeting.id)
    bookings = db.session.scalars(select(Booking).where(Booking.slot_id == meeting.slot_id,
                                                        Booking.status == BookingStatus.CONFIRMED)).all()
    stays = _stays_by_booking([b.id for b in bookings])
    for booking in bookings:
        _apply(booking, stays.get(booking.id, []), finished=reported)
    return len(bookings)


def finalize_due() -> int:
    """The sweep: meetings whose slot ended ``FINALIZE_AFTER`` ago without an ``ended`` event
    (lost, or never subscribed) get their absentees too. Returns how many meetings it finalized.

    Only meetings that reported a participant and still have a guest with no value qualify, so a
    finalized meeting is not looked at again.
    """
    now = clock.now()
    candidates = db.session.execute(
        select(Meeting.id, Slot).join(Slot, Slot.id == Meeting.slot_id)
        .where(Slot.status == SlotStatus.OPEN, Slot.starts_at > now - FINALIZE_LOOKBACK, Slot.starts_at < now,
               select(ParticipantSession.id).where(ParticipantSession.meeting_id == Meeting.id,
                                                   ParticipantSession.matched_by != MEETING_RUN).exists(),
               select(Booking.id).where(Booking.slot_id == Slot.id, Booking.status == BookingStatus.CONFIRMED,
                                        Booking.attendance.is_(None),
                                        Booking.attendance_by_host.is_(False)).exists())).all()
    due = [meeting_id for meeting_id, slot in candidates if slot.ends_at + FINALIZE_AFTER <= now]
    db.session.commit()
    for meeting_id in due:
        begin_write()
        meeting = db.session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)
        _finalize(meeting)
        db.session.commit()
    return len(due)


def _reported(meeting_id: int) -> bool:
    """The tool reported at least one participant of the meeting (the host included)."""
    return db.session.scalar(select(ParticipantSession.id).where(
        ParticipantSession.meeting_id == meeting_id, ParticipantSession.matched_by != MEETING_RUN).limit(1)) is not None


def _ended(meeting_id: int) -> bool:
    """The tool said a run of the meeting ended."""
    return db.session.scalar(select(ParticipantSession.id).where(
        ParticipantSession.meeting_id == meeting_id, ParticipantSession.matched_by == MEETING_RUN,
        ParticipantSession.left_at.is_not(None)).limit(1)) is not None


def _match(stay: ParticipantSession, slot_id: int) -> None:
    """Match a stay to a confirmed guest of the slot: registrant id, else email, else the display
    name of a guest who pressed 参加する (a guess, shown as 推定). An ambiguous name matches nobody."""
    guests = select(Booking).where(Booking.slot_id == slot_id, Booking.status == BookingStatus.CONFIRMED)
    found = None
    if stay.registrant_id:
        found = db.session.scalars(guests.where(Booking.registrant_id == stay.registrant_id)).first()
        how = BY_REGISTRANT
    if found is None and stay.email:
        found = db.session.scalars(guests.where(Booking.guest_email == stay.email.lower())).first()
        how = BY_EMAIL
    if found is None and stay.user_name:
        wanted = normalised_name(stay.user_name)
        named = [b for b in db.session.scalars(guests.where(Booking.join_opened_at.is_not(None)))
                 if normalised_name(b.guest_name) == wanted]
        found = named[0] if len(named) == 1 else None
        how = BY_NAME
    if found is not None:
        stay.booking_id, stay.matched_by = found.id, how


def _stays_by_booking(booking_ids: list[int]) -> dict[int, list[ParticipantSession]]:
    found: dict[int, list[ParticipantSession]] = {}
    if booking_ids:
        for stay in db.session.scalars(select(ParticipantSession).where(
                ParticipantSession.booking_id.in_(booking_ids))):
            found.setdefault(stay.booking_id, []).append(stay)
    return found


def _recompute(booking: Booking, finished: bool) -> None:
    _apply(booking, _stays_by_booking([booking.id]).get(booking.id, []), finished)


def _apply(booking: Booking, stays: list[ParticipantSession], finished: bool) -> None:
    """Set a guest's attendance from their stays (unless the host set it).

    Without stays the guest is 欠席 only when ``finished`` (the meeting is over and reported
    participants); otherwise the value is left as it is.
    """
    if booking.attendance_by_host:
        return
    if stays:
        booking.attendance = PRESENT
        booking.attended_minutes = attended_minutes(stays)
        booking.attendance_estimated = all(s.matched_by == BY_NAME for s in stays)
    elif finished:
        booking.attendance, booking.attended_minutes, booking.attendance_estimated = ABSENT, 0, False


def attended_minutes(stays: list[ParticipantSession]) -> int:
    """Minutes covered by the closed stays, overlaps (two devices at once) counted once."""
    spans = sorted((s.joined_at, s.left_at) for s in stays
                   if s.joined_at is not None and s.left_at is not None and s.left_at > s.joined_at)
    seconds, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None:
                seconds += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        seconds += (current_end - current_start).total_seconds()
    return int((seconds + 30) // 60)


def set_by_host(booking: Booking, host_id: int, value: str) -> None:
    """The host's own 出席 / 欠席 for a guest (kept against later events), or ``AUTO`` to go
    back to what the events say. Flushes.

    :raises PermissionError: the booking is not one of ``host_id``'s guests.
    :raises ValueError: ``value`` is none of ``HOST_CHOICES`` or ``AUTO``.
    """
    if booking.slot.service.host_id != host_id:
        raise PermissionError("not this host's booking")
    if value == AUTO:
        booking.attendance_by_host = False
        booking.attendance, booking.attended_minutes, booking.attendance_estimated = None, None, False
        meeting_id = db.session.scalar(select(Meeting.id).where(Meeting.slot_id == booking.slot_id))
        over = meeting_id is not None and (clock.now() >= booking.slot.ends_at + FINALIZE_AFTER or _ended(meeting_id))
        _recompute(booking, finished=over and _reported(meeting_id))
    elif value in HOST_CHOICES:
        booking.attendance, booking.attendance_by_host = value, True
        booking.attendance_estimated = False
    else:
        raise ValueError(value)
    db.session.flush()


@dataclass
class Unmatched:
    """Someone in the meeting who is none of the guests (as far as we can tell)."""

    name: str
    minutes: int


@dataclass
class SlotAttendance:
    """What the slot page's attendance section shows."""

    #: The confirmed guests, in booking order.
    guests: list[Booking]
    unmatched: list[Unmatched]
    #: The meeting reported at least one participant (else everything is 不明 for a reason).
    reported: bool
    #: The slot has ended (the absentees can be written to).
    over: bool

    @property
    def absent(self) -> list[Booking]:
        return [b for b in self.guests if b.attendance == ABSENT]


def slot_attendance(slot: Slot, meeting: Meeting | None) -> SlotAttendance:
    """The slot's guests with their attendance, and the participants matched to nobody (by
    display name, their stays summed)."""
    guests = db.session.scalars(select(Booking).where(Booking.slot_id == slot.id,
                                                      Booking.status == BookingStatus.CONFIRMED)
                                .order_by(Booking.id)).all()
    unmatched: dict[str, Unmatched] = {}
    stays_of: dict[str, list[ParticipantSession]] = {}
    reported = False
    if meeting is not None:
        for stay in db.session.scalars(select(ParticipantSession).where(
                ParticipantSession.meeting_id == meeting.id).order_by(ParticipantSession.id)):
            if stay.matched_by == MEETING_RUN:
                continue
            reported = True
            if stay.booking_id is None and stay.matched_by not in _NOT_PARTICIPANTS:
                key = normalised_name(stay.user_name) or stay.session_key
                unmatched.setdefault(key, Unmatched(stay.user_name, 0))
                stays_of.setdefault(key, []).append(stay)
    for key, person in unmatched.items():
        person.minutes = attended_minutes(stays_of[key])
    return SlotAttendance(guests=guests, unmatched=list(unmatched.values()), reported=reported,
                          over=clock.now() >= slot.ends_at)
