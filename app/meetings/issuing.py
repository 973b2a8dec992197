"""One meeting per slot on the host's video tool, issued idempotently and checked before use.

The meeting is created with the slot's first booking by a job enqueued after the commit. A
Redis lock serialises the attempts for one slot, and an ``ISSUING`` row with an ``issue_key``
is recorded *before* the tool is called (the tool writes the key into the meeting), so a retry
after a crash finds the meeting it already created instead of creating a second one.

An issuance that nothing will retry ends FAILED with its ``MeetingFailure``; the pre-flight and
the send-time check try again. The host is alerted once per slot and cause (``alert_host``).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from app import clock
from app.extensions import begin_write, db
from app.mail.render import batch_preloader, per_batch
from app.meetings import guest_links, retry, switch
from app.meetings.alerts import alert_host
from app.meetings.provider import (IssuedMeeting, MeetingEnded, MeetingGone, MeetingSpec, ProviderAuthError,
                                   ProviderDailyLimit, ProviderError, ProviderRetryable, VideoTool)
from app.meetings.timing import CHECK_PATIENCE, url_due_at
from app.meetings.tools import tool_for
from app.models import Booking, Meeting, MeetingFailure, MeetingStatus, Slot

#: After a create the tool did not answer, how long to look for it (by its issue key) before creating again.
UNANSWERED_CREATE_WAIT = timedelta(minutes=1)
#: After a tool's daily budget resets, wait this much longer before asking again.
DAILY_RESET_MARGIN = timedelta(minutes=1)


def meeting_for(slot_id: int) -> Meeting | None:
    """The slot's meeting row, if any."""
    return db.session.scalar(select(Meeting).where(Meeting.slot_id == slot_id))


def batch_meeting(slot_id: int) -> Meeting | None:
    """``meeting_for``, read once per outbox batch being rendered (the guests of one date share it).

    For reads before any write only: the memo is forgotten at every commit, but a row added later
    in the same transaction would not be seen.
    """
    return per_batch(("meeting", slot_id), lambda: meeting_for(slot_id))


def batch_link(tool: VideoTool, host_id: int):
    """``tool.link_for``, read once per outbox batch being rendered (same caveat as ``batch_meeting``)."""
    return per_batch(("video_link", host_id, tool.key), lambda: tool.link_for(host_id))


@batch_preloader
def _preload_meetings_and_links(bookings: list[Booking], memo: dict) -> None:
    """What ``batch_meeting`` and ``batch_link`` read for a batch, one query each: at the top of the
    hour a batch holds a lesson or two of each of a score of hosts."""
    slots = {booking.slot for booking in bookings}
    found = {meeting.slot_id: meeting
             for meeting in db.session.scalars(select(Meeting).where(Meeting.slot_id.in_([s.id for s in slots])))}
    hosts_by_tool: dict[str, tuple[VideoTool, set[int]]] = {}
    for slot in slots:
        memo[("meeting", slot.id)] = found.get(slot.id)
        if (tool := tool_for(slot.service)) is not None:
            hosts_by_tool.setdefault(tool.key, (tool, set()))[1].add(slot.service.host_id)
    for tool, host_ids in hosts_by_tool.values():
        links = {link.host_id: link for link in db.session.scalars(tool.link_model.linked(host_ids))}
        for host_id in host_ids:
            memo[("video_link", host_id, tool.key)] = links.get(host_id)


def covering_link(booking: Booking):
    """``(tool, link)`` when the host's link covers this booking (the service's tool is linked,
    since before the booking); None otherwise."""
    service = booking.slot.service
    tool = tool_for(service)
    if tool is None:
        return None
    found = tool.link_for(service.host_id)
    if found is None or booking.created_at < found.applies_from:
        return None
    return tool, found


def needs_meeting(slot: Slot) -> bool:
    """True while the slot is open, not over, and has a booking covered by the link."""
    if not slot.is_open or slot.ends_at <= clock.now():
        return False
    return any(covering_link(b) for b in slot.confirmed_bookings)


def spec_for(slot: Slot, issue_key: str = "", *, with_registrants: bool = False) -> MeetingSpec:
    service = slot.service
    return MeetingSpec(slot_id=slot.id, title=service.title[:200], starts_at=slot.starts_at, ends_at=slot.ends_at,
                       duration_minutes=service.duration_minutes, timezone=service.host.timezone,
                       issue_key=issue_key, with_registrants=with_registrants)


def issue_meeting(slot_id: int) -> Meeting | None:
    """Make sure the slot has a meeting on the host's tool; idempotent; commits.

    :raises ProviderError: the tool refused or failed (the row stays ISSUING with its ``failure``);
        callers decide whether it is retried or given up (``issue_or_defer``, ``ready_meeting``).
    """
    from app.queue import get_redis

    with get_redis().lock(f"meeting-issue:{slot_id}", timeout=120, blocking_timeout=130):
        begin_write()  # a fresh snapshot (another attempt may just have finished) and the write lock
        slot = db.session.get(Slot, slot_id)
        if slot is None or not needs_meeting(slot):
            db.session.commit()
            return None
        tool = tool_for(slot.service)
        meeting = meeting_for(slot_id)
        if meeting is not None and meeting.provider != tool.key and meeting.status in (
                MeetingStatus.ISSUED, MeetingStatus.ISSUING, MeetingStatus.DELETE_FAILED):
            db.session.commit()  # the service changed tool: the old meeting goes first (``planning``)
            return None
        if meeting is not None and meeting.status == MeetingStatus.ISSUED:
            db.session.commit()
            return meeting
        if meeting is not None and meeting.status == MeetingStatus.DELETE_FAILED and meeting.join_url:
            # Booked again while the tool would not delete it: it is still live there, so it serves
            # again (the send-time check confirms it).
            meeting.status, meeting.failure = MeetingStatus.ISSUED, None
            switch.release_waiting_urls(slot.service.host_id, slot_id)
            if meeting.with_registrants:  # guests booked meanwhile need their own URLs on it
                guest_links.queue_for_slot(slot_id)
            db.session.commit()
            return meeting
        found_link = tool.link_for(slot.service.host_id)
        link_id = found_link.id
        if meeting is None:
            meeting = Meeting(slot_id=slot_id, host_id=slot.service.host_id)
            db.session.add(meeting)
        meeting.provider = tool.key
        # A failed issuance keeps its key: a create the tool finished after we gave up is found, not doubled.
        reconcile = meeting.status in (MeetingStatus.ISSUING, MeetingStatus.FAILED) and bool(meeting.issue_key)
        if not reconcile:
            meeting.issue_key = uuid.uuid4().hex
        if meeting.status != MeetingStatus.ISSUING:
            meeting.status = MeetingStatus.ISSUING
            meeting.attempts = 0
        meeting.topic = slot.service.title[:200]
        meeting.attempts += 1
        spec = spec_for(slot, meeting.issue_key,
                        with_registrants=guest_links.wanted(slot.service, tool, found_link))
        db.session.commit()  # ISSUING is on record before the tool is called
        meeting_id = meeting.id
        try:
            created = tool.find(link_id, spec) if reconcile else None
            if created is None:
                _wait_out_unanswered_create(slot_id)
                created = _create(tool, link_id, spec)
                tool.record_write(link_id)
        except ProviderDailyLimit as exc:
            tool.record_write(link_id, exhausted=True)
            _record_error(meeting_id, exc)
            raise
        except ProviderError as exc:
            _record_error(meeting_id, exc)
            raise
        begin_write()
        meeting = db.session.get(Meeting, meeting_id)
        _apply(meeting, created)
        switch.release_waiting_urls(meeting.host_id, slot_id)
        if meeting.with_registrants:
            guest_links.queue_for_slot(slot_id)
        db.session.commit()
        return meeting


def _apply(meeting: Meeting, issued: IssuedMeeting) -> None:
    meeting.status = MeetingStatus.ISSUED
    meeting.external_id = issued.external_id
    meeting.join_url = issued.join_url
    meeting.password = issued.password
    meeting.host_url = issued.host_url
    meeting.with_registrants = issued.with_registrants
    meeting.issued_at = clock.now()
    meeting.failure, meeting.error_detail = None, ""


def _unanswered_key(slot_id: int) -> str:
    return f"meeting-create-unanswered:{slot_id}"


def _create(tool: VideoTool, link_id: int, spec: MeetingSpec) -> IssuedMeeting:
    """Create the meeting; remember when the tool did not answer (it may have created it anyway)."""
    from app.queue import get_redis

    try:
        return tool.create(link_id, spec)
    except ProviderRetryable as exc:
        if not exc.answered:  # timeout or dropped connection: no answer, not a refusal
            get_redis().set(_unanswered_key(spec.slot_id), clock.now().isoformat(), ex=2 * 86400)
        raise


def _wait_out_unanswered_create(slot_id: int) -> None:
    """Refuse to create again while an unanswered create may still appear on the tool.

    A tool can finish a create after our client gave up on it (the emulators' ``timeout`` fault
    does): the next attempt — the slot's second booking, or a retry — would not find it yet and
    would create a second meeting, left on the host's account (tests/test_faults.py).

    :raises ProviderRetryable: with the seconds left of UNANSWERED_CREATE_WAIT.
    """
    from app.queue import get_redis

    raw = get_redis().get(_unanswered_key(slot_id))
    if raw is None:
        return
    left = (datetime.fromisoformat(raw.decode()) + UNANSWERED_CREATE_WAIT - clock.now()).total_seconds()
    if left > 0:
        raise ProviderRetryable("an unanswered create may still appear", retry_after=left)


def failure_of(exc: ProviderError) -> MeetingFailure:
    """The cause, for the host, of a failed call."""
    if isinstance(exc, ProviderAuthError):
        return MeetingFailure.LINK_BROKEN
    if isinstance(exc, ProviderDailyLimit):
        return MeetingFailure.DAILY_LIMIT
    if isinstance(exc, ProviderRetryable):
        return MeetingFailure.UNAVAILABLE
    return MeetingFailure.REFUSED


def detail_of(exc: ProviderError) -> str:
    """What the tool said, for staff (never shown to hosts)."""
    status = f" (HTTP {exc.status})" if exc.status else ""
    return f"{type(exc).__name__}{status}: {exc}"


def _record_error(meeting_id: int, exc: ProviderError) -> None:
    db.session.rollback()
    begin_write()
    meeting = db.session.get(Meeting, meeting_id)
    meeting.record_failure(failure_of(exc), detail_of(exc))
    if isinstance(exc, MeetingGone):  # what this issue key made was deleted on the tool: the next try needs a new one
        meeting.issue_key = ""
    db.session.commit()


def issue_or_defer(slot_id: int) -> str:
    """The issuing job: issue now, or schedule the retry that fits the failure; give up when none is left.

    Every issuance ends ISSUED or FAILED (``_give_up``): a meeting never stays ISSUING once
    nothing will try it again. Returns ``issued``, ``skipped``, ``retry``, ``deferred`` or ``failed``.
    """
    retry.issue_attempt_started(slot_id)
    outcome = _issue_or_defer(slot_id)
    if outcome in ("issued", "skipped", "failed"):
        retry.issue_settled(slot_id)
    return outcome


def _issue_or_defer(slot_id: int) -> str:
    try:
        return "issued" if issue_meeting(slot_id) is not None else "skipped"
    except ProviderRetryable as exc:
        meeting = meeting_for(slot_id)
        if retry.retry_later(exc, meeting.attempts if meeting is not None else retry.MAX_ATTEMPTS,
                             "issue_meeting", slot_id):
            return "retry"
        return _give_up(slot_id, failure_of(exc))
    except ProviderDailyLimit as exc:
        # The budget comes back at its reset: wait for it when that is before the start.
        slot = db.session.get(Slot, slot_id)
        if exc.resume_at >= slot.starts_at:
            return _give_up(slot_id, MeetingFailure.DAILY_LIMIT)
        retry.queue_issue_at(exc.resume_at + DAILY_RESET_MARGIN, slot_id)
        if exc.resume_at >= url_due_at(slot):  # too late for the URL email: the host may act meanwhile
            begin_write()
            alert_host(db.session.get(Slot, slot_id), MeetingFailure.DAILY_LIMIT)
            db.session.commit()
        return "deferred"
    except ProviderError as exc:
        return _give_up(slot_id, failure_of(exc))


def _give_up(slot_id: int, failure: MeetingFailure) -> str:
    """Nothing will retry the issuance: the meeting ends FAILED with why, and the host is alerted; commits.

    Returns ``failed``, or ``skipped`` when another attempt settled the meeting meanwhile.
    """
    db.session.rollback()
    begin_write()
    meeting = meeting_for(slot_id)
    if meeting is None or meeting.status != MeetingStatus.ISSUING:
        db.session.commit()
        return "skipped"
    meeting.status, meeting.failure = MeetingStatus.FAILED, failure
    alert_host(meeting.slot, failure)
    db.session.commit()
    return "failed"


class MeetingNotReady(Exception):
    """The slot has no meeting a guest can join now.

    :param failure: why (for the host, and the URL email's wait).
    :param retry_at: when trying again can work (a daily budget's reset), or None.
    :param quiet: only the check failed (the tool did not answer): the meeting stays as it is,
        nobody is told, and the email asks again soon.
    """

    def __init__(self, failure: MeetingFailure, retry_at: datetime | None = None, *, quiet: bool = False):
        super().__init__(failure.value)
        self.failure = failure
        self.retry_at = retry_at
        self.quiet = quiet


def _check(tool: VideoTool, link_id: int, meeting: Meeting) -> str:
    """Ask the tool once per outbox batch whether the issued meeting is still there:
    ``ok``, ``gone``, ``broken`` (the grant died) or ``unanswered`` (so many URL emails of one
    slot cost one call, not one each)."""
    def ask() -> str:
        try:
            tool.get(link_id, meeting.external_id)
            return "ok"
        except (MeetingGone, MeetingEnded):
            return "gone"
        except ProviderAuthError:
            return "broken"
        except ProviderError:
            return "unanswered"

    return per_batch(("meeting-check", meeting.id, meeting.external_id), ask, across_commits=True)


def ready_meeting(slot: Slot, *, due_at: datetime | None = None) -> Meeting:
    """The slot's meeting, checked on its tool just before a URL is sent; re-issued if it is gone.

    :param due_at: when the email asking fell due: a tool that does not answer the check is asked
        again until CHECK_PATIENCE after it, then the URL we have is used.
    :raises MeetingNotReady: it cannot be issued now (then given up: FAILED, host alerted), or
        ``quiet`` when only the check went unanswered.
    """
    tool = tool_for(slot.service)
    found = batch_link(tool, slot.service.host_id)
    meeting = batch_meeting(slot.id)
    if meeting is not None and meeting.status == MeetingStatus.ISSUED and meeting.provider == tool.key:
        answer = _check(tool, found.id, meeting)
        if answer == "ok":
            return meeting
        if answer == "broken":
            raise MeetingNotReady(MeetingFailure.LINK_BROKEN)
        if answer == "unanswered":
            if due_at is not None and clock.now() < due_at + CHECK_PATIENCE \
                    and clock.now() < slot.starts_at - CHECK_PATIENCE:
                raise MeetingNotReady(MeetingFailure.UNAVAILABLE, clock.now() + timedelta(minutes=2), quiet=True)
            return meeting  # out of patience: the URL the tool gave us most likely still works
        begin_write()
        meeting = meeting_for(slot.id)
        meeting.mark_deleted(f"gone on {tool.name} before the URL email")
        db.session.commit()
    if tool.writes_left(found.id) == 0:  # spent today: asking again only spends a request
        begin_write()
        alert_host(db.session.get(Slot, slot.id), MeetingFailure.DAILY_LIMIT)
        db.session.commit()
        raise MeetingNotReady(MeetingFailure.DAILY_LIMIT, tool.budget_resets_at() + DAILY_RESET_MARGIN)
    try:
        issued = issue_meeting(slot.id)
    except ProviderDailyLimit as exc:
        _give_up(slot.id, MeetingFailure.DAILY_LIMIT)
        raise MeetingNotReady(MeetingFailure.DAILY_LIMIT, exc.resume_at + DAILY_RESET_MARGIN) from None
    except ProviderError as exc:
        _give_up(slot.id, failure_of(exc))
        raise MeetingNotReady(failure_of(exc)) from None
    if issued is None:
        issued = meeting_for(slot.id)  # another attempt may have issued it meanwhile
    if issued is None or issued.status != MeetingStatus.ISSUED:
        raise MeetingNotReady(issued.failure if issued is not None and issued.failure else MeetingFailure.UNAVAILABLE)
    return issued


def usable_meeting(slot: Slot) -> Meeting | None:
    """``ready_meeting``, or None when it cannot be issued now (given up, host alerted)."""
    try:
        return ready_meeting(slot)
    except MeetingNotReady:
        return None
