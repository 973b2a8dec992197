"""Meetings on the host's Zoom account, and the URL email 24 hours before the start.

One meeting per slot, shared by its guests, created with the slot's first booking by a job
enqueued after the commit. Creation is idempotent: a Redis lock serialises the attempts for one
slot, and an ``ISSUING`` row with an ``issue_key`` written into the agenda is recorded *before*
Zoom is called, so a retry after a crash finds the meeting it already created instead of
creating a second one.

An issuance that nothing will retry ends FAILED with its ``MeetingFailure``; the pre-flight and
the send-time check try again. The host is alerted once per slot and cause (``alert_host``).

The URL email is rendered at send time: just before sending, the meeting is checked on Zoom
and re-issued if it is gone. Guests get a stable link ``/j/<token>`` that redirects to the
slot's current join URL, so a re-issued URL never leaves a stale link in an inbox.
"""
from __future__ import annotations

import logging
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from icalendar import Calendar, Event
from rq import Retry, get_current_job
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app import clock
from app.extensions import begin_write, db
from app.mail.outbox import cancel_pending, queue_email
from app.mail.render import WAITING_PREFIX, DeferDelivery, SkipDelivery, email_kind
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, MeetingStatus, Slot,
                        SlotStatus, User, Venue, ZoomConnection, ZoomMeeting)
from app.models.zoom import MeetingFailure
from app.queue import enqueue_after_commit, get_queue, get_redis
from app.services.slots import confirmed_bookings, guest_email_context
from app.urls import external_url
from app.zoom import link
from app.zoom.client import (ZoomAuthError, ZoomDailyLimit, ZoomError, ZoomGone, ZoomMeetingEnded,
                             ZoomMeetingInProgress, ZoomRetryable, next_utc_midnight)

log = logging.getLogger(__name__)

#: The URL email goes out this long before the start (later bookings get it at once).
URL_LEAD = timedelta(hours=24)
#: The same, as the whole hours guest and host texts say (「開催24時間前」).
URL_LEAD_HOURS = int(URL_LEAD / timedelta(hours=1))
#: The pre-flight check runs this long before the start, while there is time to relink.
PREFLIGHT_LEAD = timedelta(hours=27)
#: Zoom's free plan cuts meetings at 40 minutes (zoom-facts §6).
BASIC_LIMIT_MINUTES = 40
#: Attempts of one issuance that Zoom's Retry-After may re-schedule before it is given up.
MAX_ATTEMPTS = 6
#: RQ's retries of a job's Zoom call (create, update, delete) after a 5xx, a timeout, a body that
#: is not Zoom's JSON or a 429 without Retry-After.
ZOOM_RETRY = Retry(max=5, interval=[10, 30, 60, 180, 600])
#: After a create Zoom did not answer, how long to look for it (by its issue key) before creating again.
UNANSWERED_CREATE_WAIT = timedelta(minutes=1)
#: The plan read from Zoom is trusted this long outside a create (each create reads it again).
PLAN_FRESH_FOR = timedelta(hours=1)
#: After Zoom's daily budget resets, wait this much longer before asking again.
DAILY_RESET_MARGIN = timedelta(minutes=1)
#: How long a slot's queued issue job holds off another (renewed at each attempt): longer than
#: ZOOM_RETRY's longest back-off. Past it, a lost job no longer stops the next booking's.
ISSUE_QUEUED_FOR = timedelta(minutes=15)


def url_due_at(slot: Slot) -> datetime:
    """When the URL email of a booking of this slot is due."""
    return max(clock.now(), slot.starts_at - URL_LEAD)


def meeting_for(slot_id: int) -> ZoomMeeting | None:
    """The slot's meeting row, if any."""
    return db.session.scalar(select(ZoomMeeting).where(ZoomMeeting.slot_id == slot_id))


def covering_connection(booking: Booking) -> ZoomConnection | None:
    """The host's link when it covers this booking (Zoom service, linked before the booking)."""
    service = booking.slot.service
    if service.venue != Venue.ZOOM:
        return None
    connection = link.connection_for(service.host)
    if connection is None or booking.created_at < connection.applies_from:
        return None
    return connection


def plan_url_delivery(booking: Booking) -> bool:
    """For a new booking covered by the link: issue the meeting and schedule the URL emails."""
    if covering_connection(booking) is None:
        return False
    slot = booking.slot
    meeting = meeting_for(slot.id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED:  # later guests share the issued one
        queue_issue(slot.id)
    due = url_due_at(slot)
    queue_email("zoom_url", to_email=booking.guest_email, to_name=booking.guest_name, host_id=slot.service.host_id,
                booking_id=booking.id, slot_id=slot.id, due_at=due, dedupe_key=f"zoom_url:{booking.id}")
    _plan_host_notice(slot, due)
    return True


def _issue_job():
    from app import jobs  # jobs import this module

    return jobs.issue_meeting


def _issue_queued_key(slot_id: int) -> str:
    return f"meeting-issue-queued:{slot_id}"


def queue_issue(slot_id: int) -> None:
    """Issue the slot's meeting once this transaction commits, unless its issue job is already
    waiting or will be retried: a busy slot's bookings share one job (each job makes its own
    create attempts while Zoom fails). ``issue_or_defer`` clears the mark when it is done."""
    enqueue_after_commit(_issue_job(), slot_id, retry=ZOOM_RETRY,
                         unless_marked=(_issue_queued_key(slot_id), ISSUE_QUEUED_FOR))


def _plan_host_notice(slot: Slot, due: datetime) -> None:
    pending = db.session.scalar(select(Delivery.id).where(
        Delivery.slot_id == slot.id, Delivery.kind == "zoom_host_notice", Delivery.status == DeliveryStatus.PENDING))
    if pending is None:
        host = slot.service.host
        queue_email("zoom_host_notice", to_email=host.email, to_name=host.display_name, locale=host.locale,
                    host_id=host.id, slot_id=slot.id, due_at=due)


# --- issuing ----------------------------------------------------------------------------------------

def _password() -> str:
    # Zoom passcodes: at most 10 characters of [A-Za-z0-9@-_*] (zoom-facts §3).
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))


def meeting_body(slot: Slot, connection: ZoomConnection, issue_key: str) -> dict:
    """The create request (zoom-facts §7): UTC with ``Z`` plus the host's time zone, never mixed."""
    service = slot.service
    return {
        "topic": service.title[:200],
        "type": 2,
        "start_time": slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": service.duration_minutes,
        "timezone": service.host.timezone,
        "password": _password(),
        "agenda": f"[ref:{issue_key}]",
        # join_before_host stays off: on a Basic plan the 40-minute clock starts with the first
        # participant, so early guests would burn it (zoom-facts §6).
        "settings": {"join_before_host": False, "waiting_room": False, "approval_type": 2,
                     "auto_recording": "none", "mute_upon_entry": False},
    }


def needs_meeting(slot: Slot) -> bool:
    """True while the slot is open, not over, and has a booking covered by the link."""
    if not slot.is_open or slot.ends_at <= clock.now():
        return False
    return any(covering_connection(b) for b in confirmed_bookings(slot))


def issue_meeting(slot_id: int) -> ZoomMeeting | None:
    """Make sure the slot has a meeting on the host's Zoom; idempotent; commits.

    :raises ZoomError: Zoom refused or failed (the row stays ISSUING with its ``failure``); callers
        decide whether it is retried or given up (``issue_or_defer``, ``usable_meeting``).
    """
    with get_redis().lock(f"meeting-issue:{slot_id}", timeout=120, blocking_timeout=130):
        begin_write()  # a fresh snapshot (another attempt may just have finished) and the write lock
        slot = db.session.get(Slot, slot_id)
        if slot is None or not needs_meeting(slot):
            db.session.commit()
            return None
        meeting = meeting_for(slot_id)
        if meeting is not None and meeting.status == MeetingStatus.ISSUED:
            db.session.commit()
            return meeting
        if meeting is not None and meeting.status == MeetingStatus.DELETE_FAILED and meeting.join_url:
            # Booked again while Zoom would not delete it: it is still live there, so it serves
            # again (the send-time check confirms it on Zoom).
            meeting.status, meeting.failure = MeetingStatus.ISSUED, None
            link.release_waiting_urls(slot.service.host_id, slot_id)
            db.session.commit()
            return meeting
        connection = link.connection_for(slot.service.host)
        if meeting is None:
            meeting = ZoomMeeting(slot_id=slot_id, host_id=slot.service.host_id)
            db.session.add(meeting)
        # A failed issuance keeps its key: a create Zoom finished after we gave up is found, not doubled.
        reconcile = meeting.status in (MeetingStatus.ISSUING, MeetingStatus.FAILED) and bool(meeting.issue_key)
        if not reconcile:
            meeting.issue_key = uuid.uuid4().hex
        if meeting.status != MeetingStatus.ISSUING:
            meeting.status = MeetingStatus.ISSUING
            meeting.attempts = 0
        meeting.topic = slot.service.title[:200]
        meeting.attempts += 1
        body = meeting_body(slot, connection, meeting.issue_key)
        marker, connection_id = f"[ref:{meeting.issue_key}]", connection.id
        db.session.commit()  # ISSUING is on record before Zoom is called
        meeting_id = meeting.id
        api = link.api_for(connection_id)
        try:
            found = [m for m in api.list_meetings() if marker in (m.get("agenda") or "")] if reconcile else []
            if found:
                created = api.get_meeting(found[0]["id"])
            else:
                _wait_out_unanswered_create(slot_id)
                link.refresh_plan(connection_id)  # it decides the 40-minute line, and can change any time
                created = _create(api, body, slot_id)
                link.record_write(connection_id)
        except ZoomDailyLimit as exc:
            link.record_write(connection_id, exhausted=True)
            _record_error(meeting_id, exc)
            raise
        except ZoomError as exc:
            _record_error(meeting_id, exc)
            raise
        begin_write()
        meeting = db.session.get(ZoomMeeting, meeting_id)
        meeting.status = MeetingStatus.ISSUED
        meeting.zoom_meeting_id = created.id
        meeting.join_url = created.join_url
        meeting.password = created.password
        meeting.issued_at = clock.now()
        meeting.failure, meeting.error_detail = None, ""
        link.release_waiting_urls(meeting.host_id, slot_id)
        db.session.commit()
        return meeting


def _unanswered_key(slot_id: int) -> str:
    return f"meeting-create-unanswered:{slot_id}"


def _create(api, body: dict, slot_id: int):
    """Create the meeting; remember when Zoom did not answer (it may have created it anyway)."""
    try:
        return api.create_meeting(body)
    except ZoomRetryable as exc:
        if exc.status is None:  # timeout or dropped connection: no answer, not a refusal
            get_redis().set(_unanswered_key(slot_id), clock.now().isoformat(), ex=2 * 86400)
        raise


def _wait_out_unanswered_create(slot_id: int) -> None:
    """Refuse to create again while an unanswered create may still appear on Zoom.

    Zoom can finish a create after our client gave up on it (the emulator's ``timeout`` fault
    does): the next attempt — the slot's second booking, or RQ's retry — would not list it yet
    and would create a second meeting, left on the host's account (tests/test_faults.py).

    :raises ZoomRetryable: with the seconds left of UNANSWERED_CREATE_WAIT.
    """
    raw = get_redis().get(_unanswered_key(slot_id))
    if raw is None:
        return
    left = (datetime.fromisoformat(raw.decode()) + UNANSWERED_CREATE_WAIT - clock.now()).total_seconds()
    if left > 0:
        raise ZoomRetryable("an unanswered create may still appear on Zoom", retry_after=left)


def failure_of(exc: ZoomError) -> MeetingFailure:
    """The cause, for the host, of a failed Zoom call."""
    if isinstance(exc, ZoomAuthError):
        return MeetingFailure.LINK_BROKEN
    if isinstance(exc, ZoomDailyLimit):
        return MeetingFailure.DAILY_LIMIT
    if isinstance(exc, ZoomRetryable):
        return MeetingFailure.ZOOM_UNAVAILABLE
    return MeetingFailure.ZOOM_REFUSED


def _record_error(meeting_id: int, exc: ZoomError) -> None:
    db.session.rollback()
    begin_write()
    status = f" (HTTP {exc.status})" if exc.status else ""
    db.session.get(ZoomMeeting, meeting_id).record_failure(failure_of(exc), f"{type(exc).__name__}{status}: {exc}")
    db.session.commit()


def _retry_later(exc: ZoomError, attempts: int, job, slot_id: int) -> bool:
    """The one retry policy of a job's Zoom call (create, delete): Zoom's own time first, then RQ's.

    A per-second 429 (or an unanswered create that may still appear) is tried again after its
    ``retry_after``, for up to MAX_ATTEMPTS attempts; otherwise RQ's back-off (ZOOM_RETRY) takes
    over while the job has retries left: the error is re-raised for it. Returns True when a retry
    is scheduled here, False when none is left (the caller gives up).
    """
    if not isinstance(exc, ZoomRetryable):
        return False
    if exc.retry_after is not None and attempts < MAX_ATTEMPTS:
        get_queue().enqueue_in(timedelta(seconds=max(exc.retry_after, 1)), job, slot_id)
        return True
    if _retried_by_rq():
        raise exc
    return False


def _retried_by_rq() -> bool:
    """True inside an issuing job that RQ runs again when it raises (ZOOM_RETRY not used up)."""
    job = get_current_job()
    return job is not None and bool(job.retries_left)


def issue_or_defer(slot_id: int) -> str:
    """The issuing job: issue now, or schedule the retry that fits the failure; give up when none is left.

    Every issuance ends ISSUED or FAILED (``_give_up``): a meeting never stays ISSUING once
    nothing will try it again.

    Returns what happened: ``issued``, ``skipped``, ``retry``, ``deferred`` or ``failed``. While
    another attempt will come (``retry``, ``deferred``, or RQ's retry when this raises), the
    slot's ``queue_issue`` mark stays, so new bookings do not queue jobs of their own.
    """
    redis, queued = get_redis(), _issue_queued_key(slot_id)
    redis.expire(queued, ISSUE_QUEUED_FOR)  # this attempt may end in a retry: hold off others as long again
    outcome = _issue_or_defer(slot_id)
    if outcome in ("issued", "skipped", "failed"):
        redis.delete(queued)
    return outcome


def _issue_or_defer(slot_id: int) -> str:
    try:
        return "issued" if issue_meeting(slot_id) is not None else "skipped"
    except ZoomRetryable as exc:
        meeting = meeting_for(slot_id)
        if _retry_later(exc, meeting.attempts if meeting is not None else MAX_ATTEMPTS, _issue_job(), slot_id):
            return "retry"
        return _give_up(slot_id, failure_of(exc))
    except ZoomDailyLimit as exc:
        # The budget comes back at 00:00 UTC (09:00 JST): wait for it when that is before the start.
        slot = db.session.get(Slot, slot_id)
        if exc.resume_at >= slot.starts_at:
            return _give_up(slot_id, MeetingFailure.DAILY_LIMIT)
        get_queue().enqueue_at(exc.resume_at + DAILY_RESET_MARGIN, _issue_job(), slot_id)
        get_redis().expire(_issue_queued_key(slot_id), exc.resume_at - clock.now() + ISSUE_QUEUED_FOR)
        if exc.resume_at >= url_due_at(slot):  # too late for the URL email: the host may act meanwhile
            begin_write()
            alert_host(db.session.get(Slot, slot_id), MeetingFailure.DAILY_LIMIT)
            db.session.commit()
        return "deferred"
    except ZoomError as exc:
        return _give_up(slot_id, failure_of(exc))


def _give_up(slot_id: int, failure: MeetingFailure) -> str:
    """Nothing will retry the issuance: the meeting ends FAILED with why, and the host is alerted; commits.

    A later attempt (pre-flight, send time, a new booking) may still issue it. Returns ``failed``,
    or ``skipped`` when another attempt settled the meeting meanwhile.
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


def alert_host(slot: Slot, failure: MeetingFailure) -> Delivery | None:
    """Email the host at once that a slot has no working Zoom URL and why, once per slot and cause.

    The issue job, the pre-flight and the send-time check each find the same trouble; the host
    hears of it once. A new cause alerts again, and so does the same cause once the meeting was
    issued since (the trouble came back). Returns the email, or None when already sent.
    """
    meeting = meeting_for(slot.id)
    since = int(meeting.issued_at.timestamp()) if meeting is not None and meeting.issued_at else 0
    return _alert_once("zoom_trouble", f"zoom_trouble:{slot.id}:{failure.value}:{since}", slot,
                       {"failure": failure.value})


def _alert_once(kind: str, key: str, slot: Slot, payload: dict) -> Delivery | None:
    """Queue the host email ``kind`` about ``slot`` unless one with ``key`` was written; None then."""
    if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)) is not None:
        return None
    host = slot.service.host
    try:
        with db.session.begin_nested():
            return queue_email(kind, to_email=host.email, to_name=host.display_name, locale=host.locale,
                               host_id=host.id, slot_id=slot.id, payload=payload, dedupe_key=key)
    except IntegrityError:  # another worker wrote the same alert at the same moment (PostgreSQL)
        return None


class MeetingNotReady(Exception):
    """The slot has no meeting a guest can join, and Zoom cannot issue one now.

    :param failure: why (for the host, and the URL email's wait).
    :param retry_at: when trying again can work (the daily budget's reset), or None.
    """

    def __init__(self, failure: MeetingFailure, retry_at: datetime | None = None):
        super().__init__(failure.value)
        self.failure = failure
        self.retry_at = retry_at


def ready_meeting(slot: Slot) -> ZoomMeeting:
    """The slot's meeting, checked on Zoom just before a URL is sent; re-issued if it is gone.

    :raises MeetingNotReady: it cannot be issued now (it is then given up: FAILED, host alerted).
    """
    meeting = meeting_for(slot.id)
    connection = link.connection_for(slot.service.host)
    if meeting is not None and meeting.status == MeetingStatus.ISSUED:
        try:
            link.api_for(connection.id).get_meeting(meeting.zoom_meeting_id)
            return meeting
        except (ZoomGone, ZoomMeetingEnded):
            begin_write()
            meeting = meeting_for(slot.id)
            meeting.mark_deleted("gone on Zoom before the URL email")
            db.session.commit()
        except ZoomError:
            return meeting  # Zoom is unreachable, but the URL it gave us still works
    if link.budget_left(connection.id) == 0:  # spent today: asking Zoom again only spends a request
        begin_write()
        alert_host(db.session.get(Slot, slot.id), MeetingFailure.DAILY_LIMIT)
        db.session.commit()
        raise MeetingNotReady(MeetingFailure.DAILY_LIMIT, next_utc_midnight() + DAILY_RESET_MARGIN)
    try:
        issued = issue_meeting(slot.id)
    except ZoomDailyLimit as exc:
        _give_up(slot.id, MeetingFailure.DAILY_LIMIT)
        raise MeetingNotReady(MeetingFailure.DAILY_LIMIT, exc.resume_at + DAILY_RESET_MARGIN) from None
    except ZoomError as exc:
        _give_up(slot.id, failure_of(exc))
        raise MeetingNotReady(failure_of(exc)) from None
    if issued is None:
        issued = meeting_for(slot.id)  # another attempt may have issued it meanwhile
    if issued is None or issued.status != MeetingStatus.ISSUED:
        raise MeetingNotReady(issued.failure if issued is not None and issued.failure
                              else MeetingFailure.ZOOM_UNAVAILABLE)
    return issued


def usable_meeting(slot: Slot) -> ZoomMeeting | None:
    """``ready_meeting``, or None when it cannot be issued now (given up, host alerted)."""
    try:
        return ready_meeting(slot)
    except MeetingNotReady:
        return None


#: Meetings that may be live on the host's Zoom and are ours to delete there.
ON_ZOOM = (MeetingStatus.ISSUED, MeetingStatus.ISSUING, MeetingStatus.DELETE_FAILED)
#: A meeting Zoom would not delete because it was running is deleted this long after the slot's end.
AFTER_END = timedelta(minutes=10)


def withdraw_meeting(slot_id: int, *, finish_off: bool = True) -> bool:
    """Delete the slot's meeting on Zoom (slot cancelled, last guest gone, link OFF); commits.

    :param finish_off: then forget an OFF link with nothing left to delete (``turn_off``, which
        deletes all of a host's meetings, does that once at its end).

    Returns False when there is nothing to delete or the slot was booked again meanwhile (a
    meeting Zoom would not delete then serves again).

    :raises ZoomError: Zoom did not delete it; ``withdraw_or_retry`` records why and retries.
    """
    meeting = meeting_for(slot_id)
    if meeting is None or meeting.status not in ON_ZOOM:
        return False
    slot = meeting.slot
    host = slot.service.host
    if slot.is_open and confirmed_bookings(slot) and link.connection_for(host) is not None:
        if meeting.status == MeetingStatus.DELETE_FAILED:
            begin_write()
            meeting = meeting_for(slot_id)
            meeting.status, meeting.failure = MeetingStatus.ISSUED, None
        db.session.commit()
        return False  # booked again meanwhile
    zoom_id = None if meeting.legacy else meeting.zoom_meeting_id  # legacy: the platform's account, not ours
    grant = link.grant_for(host.id) if zoom_id else None
    db.session.commit()
    if zoom_id:
        if grant is None:
            raise ZoomAuthError("no grant left to delete the meeting with")
        try:
            link.api_for(grant.id).delete_meeting(zoom_id)  # 404/3001 count as done
        except ZoomMeetingEnded:
            pass  # 3007: over, nothing left to join
    begin_write()
    meeting_for(slot_id).mark_deleted()
    db.session.commit()
    if finish_off:
        link.finish_off(host.id)
    return True


def _withdraw_job():
    from app import jobs  # jobs import this module

    return jobs.withdraw_meeting


def queue_withdraw(slot_id: int) -> None:
    """Delete the slot's meeting on Zoom once this transaction commits, retrying as creates do."""
    enqueue_after_commit(_withdraw_job(), slot_id, retry=ZOOM_RETRY)


def withdraw_or_retry(slot_id: int) -> str:
    """The deleting job: delete now, or schedule the retry that fits the failure; give up when none is left.

    Returns ``deleted``, ``skipped``, ``retry``, ``after_end`` (running now) or ``failed`` (the host
    is alerted once; the meeting shows 「Zoomで削除できませんでした」 with a button to retry).
    """
    try:
        return "deleted" if withdraw_meeting(slot_id) else "skipped"
    except ZoomError as exc:
        attempts = record_delete_failure(slot_id, exc)
        if isinstance(exc, ZoomMeetingInProgress):
            get_queue().enqueue_at(db.session.get(Slot, slot_id).ends_at + AFTER_END, _withdraw_job(), slot_id)
            return "after_end"
        if isinstance(exc, ZoomDailyLimit):  # the daily budget counts creates and updates, never deletes
            exc = ZoomRetryable(str(exc), status=exc.status)
        if _retry_later(exc, attempts, _withdraw_job(), slot_id):
            return "retry"
        begin_write()
        meeting = meeting_for(slot_id)
        _alert_once("zoom_delete_failed", f"zoom_delete_failed:{meeting.id}", meeting.slot,
                    {"failure": meeting.failure.value})
        db.session.commit()
        return "failed"


def delete_failure_of(exc: ZoomError) -> MeetingFailure:
    """The cause, for the host, of a failed delete."""
    return MeetingFailure.IN_PROGRESS if isinstance(exc, ZoomMeetingInProgress) else failure_of(exc)


def record_delete_failure(slot_id: int, exc: ZoomError) -> int:
    """Zoom did not delete the slot's meeting: it is DELETE_FAILED with why; commits; returns the attempts so far."""
    db.session.rollback()
    log.warning("zoom delete of slot %s's meeting failed: %s (HTTP %s): %s", slot_id, type(exc).__name__,
                exc.status, exc)
    begin_write()
    meeting = meeting_for(slot_id)
    if meeting.status != MeetingStatus.DELETE_FAILED:
        meeting.status, meeting.attempts = MeetingStatus.DELETE_FAILED, 0
    meeting.attempts += 1
    status = f" (HTTP {exc.status})" if exc.status else ""
    meeting.record_failure(delete_failure_of(exc), f"delete: {type(exc).__name__}{status}: {exc}")
    attempts = meeting.attempts
    db.session.commit()
    return attempts


def retry_withdraw(slot: Slot) -> MeetingFailure | None:
    """The host pressed 「もう一度削除する」: one attempt now; returns why it failed, or None when it is gone."""
    try:
        withdraw_meeting(slot.id)
    except ZoomError as exc:
        record_delete_failure(slot.id, exc)
        return delete_failure_of(exc)
    return None


def left_on_zoom(host: User) -> list[ZoomMeeting]:
    """The host's meetings Zoom would not delete (not legacy), soonest first, with their slots."""
    return db.session.scalars(
        select(ZoomMeeting).join(ZoomMeeting.slot)
        .where(ZoomMeeting.host_id == host.id, ZoomMeeting.legacy.is_(False),
               ZoomMeeting.status == MeetingStatus.DELETE_FAILED)
        .options(contains_eager(ZoomMeeting.slot)).order_by(Slot.starts_at)).all()


@dataclass
class OffResult:
    deleted: int = 0
    #: Meetings Zoom refused to delete because they are running now (3002): deleted after their end.
    in_progress: list[ZoomMeeting] = field(default_factory=list)
    #: Meetings Zoom did not delete, with why for the host: retried on their own, and by hand.
    not_deleted: list[tuple[ZoomMeeting, str]] = field(default_factory=list)
    emails_cancelled: int = 0


def turn_off(host: User) -> OffResult:
    """Turn the link OFF: URL emails stop and meetings go; commits.

    The link reads as OFF at once. Each meeting gets one delete attempt now; one Zoom did not
    delete is DELETE_FAILED and retried by a job (``withdraw_or_retry``), and the link keeps its
    grant for that until none is left (``link.finish_off``), then it is revoked and forgotten.
    """
    result = OffResult(emails_cancelled=link.stop(host))
    db.session.commit()
    for meeting in link.live_meetings(host):
        slot_id = meeting.slot_id
        try:
            result.deleted += withdraw_meeting(slot_id, finish_off=False)
        except ZoomError as exc:
            record_delete_failure(slot_id, exc)
            meeting = meeting_for(slot_id)
            if isinstance(exc, ZoomMeetingInProgress):
                get_queue().enqueue_at(meeting.slot.ends_at + AFTER_END, _withdraw_job(), slot_id)
                result.in_progress.append(meeting)
            else:
                get_queue().enqueue(_withdraw_job(), slot_id, retry=ZOOM_RETRY)
                result.not_deleted.append((meeting, meeting.last_error))
    link.finish_off(host.id)
    return result


def move_meeting(slot_id: int) -> bool:
    """PATCH the slot's meeting to its new time; commits."""
    meeting = meeting_for(slot_id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED:
        return False
    slot = db.session.get(Slot, slot_id)
    connection = link.connection_for(slot.service.host)
    if connection is None or not connection.is_active:
        return False
    body = {"start_time": slot.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": slot.service.duration_minutes,
            "timezone": slot.service.host.timezone}
    db.session.commit()
    link.api_for(connection.id).update_meeting(meeting.zoom_meeting_id, body)
    link.record_write(connection.id)
    return True


# --- reacting to bookings and slots ------------------------------------------------------------------

def booking_cancelled(booking: Booking) -> None:
    """After a cancellation: delete the meeting when the slot has nobody left."""
    slot = booking.slot
    if meeting_for(slot.id) is not None and not confirmed_bookings(slot):
        queue_withdraw(slot.id)


def slot_moved(slot: Slot) -> None:
    """After a move: PATCH the meeting and move the pending URL emails to the new −24 h."""
    db.session.execute(
        update(Delivery).where(Delivery.slot_id == slot.id, Delivery.kind.in_(link.ZOOM_EMAIL_KINDS),
                               Delivery.status == DeliveryStatus.PENDING)
        .values(due_at=url_due_at(slot)).execution_options(synchronize_session=False))
    if meeting_for(slot.id) is not None:
        from app import jobs

        enqueue_after_commit(jobs.move_meeting, slot.id, retry=ZOOM_RETRY)


def slot_cancelled(slot: Slot) -> None:
    """After a cancellation of the whole slot: no host notice, and the meeting goes."""
    cancel_pending(slot_id=slot.id, kind="zoom_host_notice")
    if meeting_for(slot.id) is not None:
        queue_withdraw(slot.id)


def backfill(connection: ZoomConnection, bookings: list[Booking]) -> int:
    """The host chose to issue URLs for bookings made before linking too; returns how many."""
    if not bookings:
        return 0
    connection.applies_from = min(connection.applies_from, *(b.created_at for b in bookings))
    planned = sum(plan_url_delivery(b) for b in bookings)
    db.session.flush()
    return planned


def bookings_before_link(connection: ZoomConnection) -> list[Booking]:
    """Upcoming Zoom bookings the link does not cover (made before it was turned ON), slots and services loaded."""
    return db.session.scalars(
        select(Booking).join(Booking.slot).join(Slot.service)
        .where(*link.before_link_criteria(connection.host_id, clock.now(), connection.applies_from))
        .options(contains_eager(Booking.slot).contains_eager(Slot.service))
        .order_by(Slot.starts_at, Booking.id)
    ).all()


class NoMeeting(Exception):
    """The slot has no Zoom meeting to start (message for the host)."""


def fresh_start_url(slot: Slot) -> str:
    """A host start URL fetched from Zoom now (start URLs expire after 2 hours)."""
    meeting = meeting_for(slot.id)
    connection = link.connection_for(slot.service.host)
    if meeting is None or meeting.status != MeetingStatus.ISSUED or connection is None:
        raise NoMeeting(_("この開催日時にはZoomミーティングがまだ発行されていません。"))
    if not connection.is_active:
        raise NoMeeting(_("Zoomとの連携が切れています。連携設定から再連携してください。"))
    try:
        return link.api_for(connection.id).get_meeting(meeting.zoom_meeting_id).start_url
    except ZoomGone:
        raise NoMeeting(_("このミーティングはZoom上で削除されています。参加URLのご案内の前に自動で再発行します。")) from None
    except ZoomError:
        raise NoMeeting(_("Zoomに接続できませんでした。しばらくしてからもう一度お試しください。")) from None


def resend_url(booking: Booking) -> Delivery:
    """Queue the URL email to one guest again, now."""
    return queue_email("zoom_url", to_email=booking.guest_email, to_name=booking.guest_name,
                       host_id=booking.slot.service.host_id, booking_id=booking.id, slot_id=booking.slot_id,
                       payload={"resend": True})


# --- pre-flight ---------------------------------------------------------------------------------------

def run_preflights() -> int:
    """Check every slot entering its pre-flight window once: token, plan, meeting. Returns slots checked."""
    horizon = clock.now() + PREFLIGHT_LEAD
    slots = db.session.scalars(
        select(Slot).join(Booking).where(Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now(),
                                         Slot.starts_at <= horizon, Booking.status == BookingStatus.CONFIRMED)
        .distinct()).all()
    checked = 0
    for slot in slots:
        meeting = meeting_for(slot.id)
        if not needs_meeting(slot) or (meeting is not None and meeting.preflight_at is not None):
            continue
        checked += 1
        problem = _preflight(slot)
        begin_write()
        slot = db.session.get(Slot, slot.id)
        meeting = meeting_for(slot.id)
        if meeting is not None:
            meeting.preflight_at = clock.now()
        if problem:
            alert_host(slot, problem)
        db.session.commit()
    return checked


def _preflight(slot: Slot) -> MeetingFailure | None:
    """Check the link (token, plan) and the meeting; returns the link's trouble, if any.

    A meeting that cannot be issued is given up by ``usable_meeting``, which alerts the host.
    """
    connection = link.connection_for(slot.service.host)
    if not connection.is_active:
        return MeetingFailure.LINK_BROKEN
    try:
        if clock.now() - connection.plan_checked_at >= PLAN_FRESH_FOR:
            link.refresh_plan(connection.id)  # refreshes the token too when it is due
        else:
            link.access_token(connection.id)  # the grant still works (refreshed when due)
    except ZoomAuthError:
        return MeetingFailure.LINK_BROKEN
    except ZoomError:
        return None  # Zoom hiccup: the send-time check will try again
    usable_meeting(slot)
    return None


# --- emails -------------------------------------------------------------------------------------------

def ics_for(slot: Slot, join_link: str, description: str) -> bytes:
    """A calendar entry for one guest (no other attendee in it)."""
    calendar = Calendar()
    calendar.add("prodid", "-//booking host dashboard//JA")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"slot-{slot.id}@booking.local")
    event.add("summary", slot.service.title)
    event.add("dtstart", slot.starts_at)
    event.add("dtend", slot.ends_at)
    event.add("dtstamp", clock.now())
    event.add("location", join_link)
    event.add("url", join_link)
    event.add("description", description)
    calendar.add_component(event)
    return calendar.to_ical()


@email_kind("zoom_url", subject=lambda ctx: _("【参加URLのご案内】%(title)s", title=ctx["service"].title))
def _zoom_url_context(delivery: Delivery) -> dict:
    ctx = guest_email_context(delivery)
    booking, slot, service = ctx["booking"], ctx["slot"], ctx["service"]
    if not booking.is_confirmed or not slot.is_open:
        raise SkipDelivery("booking or slot cancelled")
    connection = link.connection_for(service.host)
    legacy_meeting = meeting_for(slot.id)
    if connection is None and legacy_meeting is not None and legacy_meeting.legacy \
            and legacy_meeting.status == MeetingStatus.ISSUED:
        # Issued on a platform sub-account before personal linking; valid until the release.
        return _legacy_url_context(ctx, legacy_meeting, booking)
    if connection is None:
        raise SkipDelivery("Zoom link is OFF: nothing is sent automatically")
    if delivery.last_error.startswith(WAITING_PREFIX) and slot.starts_at <= clock.now():
        raise SkipDelivery("the lesson started before a meeting could be issued")  # the guest was told: until the start
    try:
        if not connection.is_active:
            begin_write()
            alert_host(db.session.get(Slot, slot.id), MeetingFailure.LINK_BROKEN)
            db.session.commit()
            raise MeetingNotReady(MeetingFailure.LINK_BROKEN)
        meeting = ready_meeting(slot)  # alerts the host when it cannot be issued
    except MeetingNotReady as why:
        _wait_for_meeting(delivery, slot, why)
    join_link = external_url("booking.join", token=booking.join_token)
    ctx.update(meeting=meeting, join_link=join_link,
               basic_cut=connection.is_basic and service.duration_minutes > BASIC_LIMIT_MINUTES,
               attachments=[("invite.ics", ics_for(slot, join_link, service.host_notes), "text", "calendar")])
    return ctx


#: How long a URL email waits for a meeting before it looks again, by cause (a relink, or the
#: meeting being issued, sends it at once; the daily limit waits for its reset).
WAIT_FOR_MEETING = {MeetingFailure.LINK_BROKEN: timedelta(hours=1), MeetingFailure.ZOOM_REFUSED: timedelta(hours=1)}
WAIT_FOR_MEETING_DEFAULT = timedelta(minutes=10)
#: The last look for a meeting is this long before the start; after the start the URL email is dropped.
LAST_LOOK_BEFORE_START = timedelta(minutes=5)


def _wait_for_meeting(delivery: Delivery, slot: Slot, why: MeetingNotReady):
    """The URL email cannot carry a URL yet: tell the guest once (「参加URLの準備中」, with their
    ``/j/`` page) and keep the email waiting until a meeting can be issued, up to the start.

    :raises DeferDelivery: always, or ``SkipDelivery`` once the lesson has started.
    """
    now = clock.now()
    if slot.starts_at <= now:
        raise SkipDelivery("the lesson started before a meeting could be issued")
    last_look = slot.starts_at - LAST_LOOK_BEFORE_START
    until = why.retry_at or now + WAIT_FOR_MEETING.get(why.failure, WAIT_FOR_MEETING_DEFAULT)
    until = min(until, last_look) if last_look > now else min(now + timedelta(minutes=1), slot.starts_at)
    key = f"zoom_url_waiting:{delivery.booking_id}:{delivery.id}"
    begin_write()
    if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)) is None:
        queue_email("zoom_url_waiting", to_email=delivery.to_email, to_name=delivery.to_name,
                    host_id=delivery.host_id, booking_id=delivery.booking_id, slot_id=slot.id, dedupe_key=key)
    db.session.commit()
    raise DeferDelivery(until, why.failure.value)


@email_kind("zoom_url_waiting", subject=lambda ctx: _("【参加URLの準備中】%(title)s", title=ctx["service"].title))
def _url_waiting_context(delivery: Delivery) -> dict:
    ctx = guest_email_context(delivery)
    booking, slot = ctx["booking"], ctx["slot"]
    if not booking.is_confirmed or not slot.is_open:
        raise SkipDelivery("booking or slot cancelled")
    if _url_sent_since(booking.id, delivery.created_at):
        raise SkipDelivery("the URL email went out meanwhile")
    ctx["join_link"] = external_url("booking.join", token=booking.join_token)
    return ctx


def _url_sent_since(booking_id: int, moment: datetime) -> bool:
    return db.session.scalar(select(Delivery.id).where(
        Delivery.booking_id == booking_id, Delivery.kind == "zoom_url", Delivery.status == DeliveryStatus.SENT,
        Delivery.sent_at >= moment).limit(1)) is not None


def _legacy_url_context(ctx: dict, meeting: ZoomMeeting, booking: Booking) -> dict:
    join_link = external_url("booking.join", token=booking.join_token)
    ctx.update(meeting=meeting, join_link=join_link, basic_cut=False,
               attachments=[("invite.ics", ics_for(ctx["slot"], join_link, ctx["service"].host_notes), "text",
                             "calendar")])
    return ctx


#: The host notice waits this long at most for its guests' URL emails to go out before it tells.
NOTICE_WAITS_FOR_GUESTS = timedelta(minutes=10)


@dataclass(frozen=True)
class GuestUrlState:
    """What the host notice says of one guest's URL email."""

    guest_name: str
    guest_email: str
    #: ``sent``, ``waiting`` (no meeting yet: sent on its own once there is one), ``sending``,
    #: ``failed`` or ``none`` (not covered by the link: booked before it).
    state: str
    sent_at: datetime | None = None
    #: Why it waits (``waiting``).
    failure: MeetingFailure | None = None
    #: When it is looked at again (``waiting``).
    next_try: datetime | None = None


def guest_url_states(slot: Slot) -> list[GuestUrlState]:
    """Each confirmed guest of the slot with the state of their latest URL email."""
    bookings = confirmed_bookings(slot)
    latest: dict[int, Delivery] = {}
    for delivery in db.session.scalars(select(Delivery).where(
            Delivery.slot_id == slot.id, Delivery.kind == "zoom_url",
            Delivery.booking_id.in_([b.id for b in bookings])).order_by(Delivery.id)):
        latest[delivery.booking_id] = delivery
    states = []
    for booking in bookings:
        delivery = latest.get(booking.id)
        state = GuestUrlState(booking.guest_name, booking.guest_email, "none")
        if delivery is not None and delivery.status == DeliveryStatus.SENT:
            state = GuestUrlState(booking.guest_name, booking.guest_email, "sent", sent_at=delivery.sent_at)
        elif delivery is not None and delivery.status == DeliveryStatus.FAILED:
            state = GuestUrlState(booking.guest_name, booking.guest_email, "failed")
        elif delivery is not None and delivery.last_error.startswith(WAITING_PREFIX):
            failure = MeetingFailure(delivery.last_error.removeprefix(WAITING_PREFIX))
            state = GuestUrlState(booking.guest_name, booking.guest_email, "waiting", failure=failure,
                                  next_try=delivery.due_at)
        elif delivery is not None and delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            state = GuestUrlState(booking.guest_name, booking.guest_email, "sending")
        states.append(state)
    return states


def _notice_subject(ctx: dict) -> str:
    if ctx["all_sent"]:
        return _("予約者にZoomのURLをお送りしました（%(title)s）", title=ctx["service"].title)
    return _("【要確認】ZoomのURLをまだお送りできていない予約者がいます（%(title)s）", title=ctx["service"].title)


@email_kind("zoom_host_notice", subject=_notice_subject)
def _host_notice_context(delivery: Delivery) -> dict:
    slot = db.session.get(Slot, delivery.slot_id)
    if slot is None or not slot.is_open or not confirmed_bookings(slot):
        raise SkipDelivery("slot cancelled or empty")
    if link.connection_for(slot.service.host) is None:
        raise SkipDelivery("Zoom link is OFF")
    states = [s for s in guest_url_states(slot) if s.state != "none"]
    now = clock.now()
    # Due with the guests' emails: tell the host what happened to them, not what may. (Each wait
    # moves the row's due_at, so the bound counts from when the notice first fell due.)
    first_due = max(delivery.created_at, slot.starts_at - URL_LEAD)
    if any(s.state == "sending" for s in states) and now < first_due + NOTICE_WAITS_FOR_GUESTS:
        raise DeferDelivery(now + timedelta(minutes=1), "guests_sending")
    meeting = meeting_for(slot.id)
    return {"slot": slot, "service": slot.service, "host": slot.service.host, "tz": slot.service.host.timezone,
            "guests": states, "all_sent": all(s.state == "sent" for s in states),
            "has_meeting": meeting is not None and meeting.status == MeetingStatus.ISSUED,
            "start_url": external_url("services.start_meeting", slot_id=slot.id),
            "slot_url": external_url("services.slot_detail", slot_id=slot.id)}


@email_kind("zoom_trouble", subject=lambda ctx: _("【要対応】ZoomのURLを用意できませんでした（%(title)s）",
                                                  title=ctx["service"].title))
def _trouble_context(delivery: Delivery) -> dict:
    slot = db.session.get(Slot, delivery.slot_id)
    failure = delivery.payload.get("failure")
    # Rows written before failures were codes carry the sentence itself.
    return {"slot": slot, "service": slot.service, "host": slot.service.host, "tz": slot.service.host.timezone,
            "failure": MeetingFailure(failure) if failure else None, "reason": delivery.payload.get("reason", ""),
            "settings_url": external_url("zoom.settings"),
            "slot_url": external_url("services.detail", service_id=slot.service_id)}


@email_kind("zoom_delete_failed", subject=lambda ctx: _("【要対応】Zoom上のミーティングを削除できませんでした（%(title)s）",
                                                        title=ctx["service"].title))
def _delete_failed_context(delivery: Delivery) -> dict:
    meeting = meeting_for(delivery.slot_id)
    if meeting is None or meeting.status != MeetingStatus.DELETE_FAILED:
        raise SkipDelivery("deleted (or in use again) meanwhile")
    slot = meeting.slot
    return {"slot": slot, "service": slot.service, "host": slot.service.host, "tz": slot.service.host.timezone,
            "meeting": meeting, "reason": MeetingFailure(delivery.payload["failure"]).delete_text,
            "slot_url": external_url("services.slot_detail", slot_id=slot.id)}
