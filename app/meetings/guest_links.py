"""Per-guest join links: each confirmed guest of a meeting made with registration joins by their own URL.

A service turns 「予約者ごとの参加URL」 on (``services.per_guest_links``); when the host's plan allows
it (``VideoTool.supports_guest_links``: a Licensed Zoom host) the slot's meeting is made with
registration and every confirmed guest is registered on it (name and email only). A ``/j/`` link
forwarded to someone who did not book then still opens the booker's own registration, which the
tool lets in on one device at a time. Other hosts keep the meeting's shared URL.

A guest's registration is on record in ``bookings.registrant_id`` / ``registrant_join_url`` /
``registrant_meeting_id``; the meeting id says which meeting it belongs to, so a re-issued meeting
(deleted on the tool) gets new ones. ``settle`` makes one booking's registration what it should
be — on its slot's meeting while confirmed, cancelled anywhere else — and runs:

- for every guest once the meeting is issued (``queue_for_slot``, from ``issuing``);
- for one guest who books a date whose meeting exists, moves to another date, or cancels
  (``booking_made`` / ``booking_cancelled``, from ``planning``);
- as a last chance, one try, when the URL email is rendered and when the guest presses 「参加する」
  (``ensure``). A guest whose registration could not be made joins by the shared URL, which leads
  to the tool's registration page: never a dead end.

Jobs follow the one retry policy (``retry``) and never alert the host: the shared URL still works.
A tool limits the registrations of one guest on one meeting (Zoom: 3 a day), so nobody is
registered twice: one Redis lock per booking, the record read again under it, and after an add the
tool never answered, a look for it (``find_guest``) before adding again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from redis.exceptions import LockError
from sqlalchemy import select

from app.extensions import begin_write, db
from app.meetings import issuing, retry
from app.meetings.provider import ProviderError, ProviderRetryable
from app.meetings.tools import tool_named
from app.models import Booking, BookingStatus, Meeting, MeetingStatus
from app.queue import enqueue_after_commit, get_redis

log = logging.getLogger(__name__)

#: How long one booking's lock may be held: a settle makes at most three calls (cancel, find, add),
#: each with the client's 10-second timeout, plus a token refresh.
LOCK_SECONDS = 90
#: A guest pressing 「参加する」 waits at most this long for a job registering them meanwhile.
PRESS_WAITS_SECONDS = 12
#: How long an add the tool never answered is remembered (its registration may exist).
UNANSWERED_KEPT = timedelta(days=2)


def wanted(service, tool, link) -> bool:
    """Whether the service's meetings are made with a URL per guest: it asks for them and the host's plan allows."""
    return bool(service.per_guest_links) and tool is not None and link is not None \
        and tool.supports_guest_links(link)


def own_url(booking: Booking, meeting: Meeting | None) -> str | None:
    """The guest's own join URL on ``meeting`` if it is on record (reads only)."""
    if meeting is not None and meeting.with_registrants and meeting.external_id \
            and booking.registrant_meeting_id == meeting.external_id and booking.registrant_join_url:
        return booking.registrant_join_url
    return None


def meeting_to_join(booking: Booking) -> Meeting | None:
    """The meeting the guest is to be registered on now: their date's issued meeting with
    registration, while the booking and the date stand; None otherwise."""
    if not booking.is_confirmed or not booking.slot.is_open:
        return None
    meeting = issuing.meeting_for(booking.slot_id)
    if meeting is None or meeting.status != MeetingStatus.ISSUED or not meeting.with_registrants \
            or not meeting.external_id:
        return None
    return meeting


# --- reactions (called from issuing and planning) ---------------------------------------------------

def _jobs():
    from app import jobs  # jobs import the wing

    return jobs


def queue_for_slot(slot_id: int) -> None:
    """The slot's meeting was just issued with registration: register its guests once this commits."""
    enqueue_after_commit(_jobs().settle_guest_links, slot_id, retry=retry.TOOL_RETRY)


def booking_made(booking: Booking) -> None:
    """A booking on (or moved to) a date: register the guest when the date's meeting is issued
    already; a moved guest's registration on the old date's meeting is cancelled by the same job."""
    if booking.registrant_id or meeting_to_join(booking) is not None:
        enqueue_after_commit(_jobs().settle_guest_link, booking.id, retry=retry.TOOL_RETRY)


def booking_cancelled(booking: Booking) -> None:
    """A cancelled (or removed) booking: its registration is cancelled, so its own URL stops working."""
    if booking.registrant_id:
        enqueue_after_commit(_jobs().settle_guest_link, booking.id, retry=retry.TOOL_RETRY)


# --- settling one booking ----------------------------------------------------------------------------

def settle(booking_id: int, *, wait: float = LOCK_SECONDS + 10) -> str:
    """Make the guest's registration what it should be; idempotent; commits.

    Returns ``registered``, ``cancelled`` (a registration they no longer need), ``both`` (moved:
    one cancelled, one made) or ``unchanged``.

    :param wait: seconds to wait for another settle of the same booking (``LockError`` after).
    :raises ProviderError: a call failed; nothing is recorded as done that was not.
    """
    with get_redis().lock(f"guest-link:{booking_id}", timeout=LOCK_SECONDS, blocking_timeout=wait):
        db.session.commit()  # a fresh snapshot: another settle may just have finished
        booking = db.session.get(Booking, booking_id)
        if booking is None:
            return "unchanged"
        meeting = meeting_to_join(booking)
        cancelled = registered = False
        if booking.registrant_id and (meeting is None or booking.registrant_meeting_id != meeting.external_id):
            _cancel_stale(booking)
            cancelled = True
            booking = db.session.get(Booking, booking_id)
            meeting = meeting_to_join(booking)
        if meeting is not None and own_url(booking, meeting) is None:
            registered = _register(booking, meeting)
        db.session.commit()
        return "both" if cancelled and registered else "cancelled" if cancelled else \
            "registered" if registered else "unchanged"


def _cancel_stale(booking: Booking) -> None:
    """Cancel the guest's registration on a meeting they no longer attend, then forget it; commits.

    A meeting that is no longer on the tool (re-issued, deleted) took its registrations with it.
    """
    old = db.session.scalar(select(Meeting).where(
        Meeting.host_id == booking.slot.service.host_id, Meeting.external_id == booking.registrant_meeting_id,
        Meeting.status.in_((MeetingStatus.ISSUED, MeetingStatus.DELETE_FAILED))))
    if old is not None:
        tool = tool_named(old.provider)
        grant = tool.grant_for(old.host_id)
        if grant is not None:
            call = (grant.id, old.external_id, booking.registrant_id, booking.guest_email)
            db.session.commit()  # never call a tool inside a transaction
            tool.cancel_guest(*call)
    booking_id = booking.id
    begin_write()
    booking = db.session.get(Booking, booking_id)
    booking.registrant_id = booking.registrant_join_url = booking.registrant_meeting_id = None
    db.session.commit()


def _unanswered_key(booking_id: int, external_id: str) -> str:
    return f"guest-link-unanswered:{booking_id}:{external_id}"


def _register(booking: Booking, meeting: Meeting) -> bool:
    """Register the guest on ``meeting`` and record their URL; commits. False when the host's plan
    no longer allows it (the shared URL serves)."""
    tool = tool_named(meeting.provider)
    link = tool.link_for(booking.slot.service.host_id)
    if link is None or not tool.supports_guest_links(link):
        return False
    booking_id, external_id, email = booking.id, meeting.external_id, booking.guest_email
    call = (link.id, external_id, booking.guest_name, email)
    db.session.commit()  # never call a tool inside a transaction
    redis = get_redis()
    unanswered = _unanswered_key(booking_id, external_id)
    found = tool.find_guest(link.id, external_id, email) if redis.exists(unanswered) else None
    if found is None:
        try:
            found = tool.add_guest(*call)
        except ProviderRetryable as exc:
            if not exc.answered:  # it may be registered anyway: look before adding again
                redis.set(unanswered, 1, ex=UNANSWERED_KEPT)
            raise
    begin_write()
    booking = db.session.get(Booking, booking_id)
    booking.registrant_id, booking.registrant_join_url = found.id, found.join_url
    booking.registrant_meeting_id = external_id
    db.session.commit()
    redis.delete(unanswered)
    return True


def ensure(booking: Booking) -> str | None:
    """The guest's own URL on their date's meeting, registering them now if needed: the last chance
    (the URL email's rendering, 「参加する」). One try, no retry; None when the meeting has no
    per-guest links or the registration could not be made (logged: the shared URL serves)."""
    shared = issuing.batch_meeting(booking.slot_id)
    if shared is None or not shared.with_registrants:
        return None  # the common case, answered from the outbox batch's memo
    meeting = meeting_to_join(booking)
    if meeting is None:
        return None
    url = own_url(booking, meeting)
    if url is not None:
        return url
    booking_id = booking.id
    try:
        settle(booking_id, wait=PRESS_WAITS_SECONDS)
    except (ProviderError, LockError) as exc:
        log.warning("booking %s: no own join URL (%s); the meeting's shared URL serves", booking_id,
                    issuing.detail_of(exc) if isinstance(exc, ProviderError) else "busy")
        db.session.rollback()
        return None
    booking = db.session.get(Booking, booking_id)
    return own_url(booking, meeting_to_join(booking))


# --- the jobs' bodies ------------------------------------------------------------------------------

def _attempt(key: str) -> int:
    """Count one attempt of a job (for the tool's Retry-After: at most ``retry.MAX_ATTEMPTS``)."""
    redis = get_redis()
    attempts = redis.incr(f"guest-link-attempts:{key}")
    redis.expire(f"guest-link-attempts:{key}", timedelta(days=1))
    return int(attempts)


def _attempts_over(key: str) -> None:
    get_redis().delete(f"guest-link-attempts:{key}")


def settle_or_retry(booking_id: int) -> str:
    """The job for one guest: ``settle``, or the retry that fits; given up, the shared URL serves."""
    key = f"booking:{booking_id}"
    try:
        outcome = settle(booking_id)
    except ProviderError as exc:
        if retry.retry_later(exc, _attempt(key), "settle_guest_link", booking_id):
            return "retry"
        log.warning("booking %s: registration not settled, given up (%s)", booking_id, issuing.detail_of(exc))
        outcome = "failed"
    _attempts_over(key)
    return outcome


def settle_slot_or_retry(slot_id: int) -> str:
    """The job after an issuance: every confirmed guest of the slot, one after another (the tool's
    per-second limits); a guest the tool refuses keeps the shared URL, the others go on. A failure
    that can pass (5xx, timeout, rate limit) retries the job: guests already registered are skipped."""
    key = f"slot:{slot_id}"
    booking_ids = db.session.scalars(select(Booking.id).where(
        Booking.slot_id == slot_id, Booking.status == BookingStatus.CONFIRMED).order_by(Booking.id)).all()
    try:
        for booking_id in booking_ids:
            try:
                settle(booking_id)
            except ProviderRetryable:
                raise
            except ProviderError as exc:
                log.warning("booking %s: not registered (%s); the shared URL serves", booking_id,
                            issuing.detail_of(exc))
    except ProviderRetryable as exc:
        if retry.retry_later(exc, _attempt(key), "settle_guest_links", slot_id):
            return "retry"
        log.warning("slot %s: guests' registrations given up (%s); the shared URL serves", slot_id,
                    issuing.detail_of(exc))
        _attempts_over(key)
        return "failed"
    _attempts_over(key)
    return "settled"
