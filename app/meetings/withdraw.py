"""Deleting a slot's meeting on its tool (slot cancelled, last guest gone, tool OFF), and OFF itself.

A delete the tool did not do leaves the meeting DELETE_FAILED with why: it is retried with the
one policy (``retry``), the host is alerted once and can retry by hand, and an OFF link keeps its
grant until nothing is left to delete (``VideoTool.finish_off``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.extensions import begin_write, db
from app.meetings import retry, switch
from app.meetings.alerts import alert_once
from app.meetings.issuing import detail_of, failure_of, meeting_for
from app.meetings.provider import (MeetingEnded, MeetingInProgress, ProviderAuthError, ProviderDailyLimit,
                                   ProviderError, ProviderRetryable, VideoTool)
from app.meetings.timing import AFTER_END
from app.meetings.tools import tool_named
from app.models import Meeting, MeetingFailure, MeetingStatus, Slot, User

log = logging.getLogger(__name__)


def withdraw_meeting(slot_id: int, *, finish_off: bool = True) -> bool:
    """Delete the slot's meeting on its tool; commits.

    :param finish_off: then forget an OFF link with nothing left to delete (``turn_off``, which
        deletes all of a host's meetings, does that once at its end).

    Returns False when there is nothing to delete or the slot was booked again meanwhile (a
    meeting the tool would not delete then serves again).

    :raises ProviderError: the tool did not delete it; ``withdraw_or_retry`` records why and retries.
    """
    meeting = meeting_for(slot_id)
    if meeting is None or meeting.status not in switch.ON_TOOL:
        return False
    tool = tool_named(meeting.provider)
    slot = meeting.slot
    host_id = slot.service.host_id
    if slot.is_open and slot.confirmed_bookings and slot.service.venue.value == tool.key \
            and tool.link_for(host_id) is not None:
        if meeting.status == MeetingStatus.DELETE_FAILED:
            begin_write()
            meeting = meeting_for(slot_id)
            meeting.status, meeting.failure = MeetingStatus.ISSUED, None
        db.session.commit()
        return False  # booked again meanwhile
    external_id = None if meeting.legacy else meeting.external_id  # legacy: the platform's account, not ours
    grant = tool.grant_for(host_id) if external_id else None
    db.session.commit()
    if external_id:
        if grant is None:
            raise ProviderAuthError("no grant left to delete the meeting with")
        try:
            tool.delete(grant.id, external_id)  # one already gone counts as done
        except MeetingEnded:
            pass  # over, nothing left to join
    begin_write()
    meeting_for(slot_id).mark_deleted()
    db.session.commit()
    if finish_off:
        tool.finish_off(host_id)
    return True


def withdraw_or_retry(slot_id: int) -> str:
    """The deleting job: delete now, or schedule the retry that fits the failure; give up when none is left.

    Returns ``deleted``, ``skipped``, ``retry``, ``after_end`` (running now) or ``failed`` (the host
    is alerted once; the meeting shows 「削除できませんでした」 with a button to retry).
    """
    try:
        return "deleted" if withdraw_meeting(slot_id) else "skipped"
    except ProviderError as exc:
        attempts = record_delete_failure(slot_id, exc)
        if isinstance(exc, MeetingInProgress):
            retry.withdraw_at(db.session.get(Slot, slot_id).ends_at + AFTER_END, slot_id)
            return "after_end"
        if isinstance(exc, ProviderDailyLimit):  # daily budgets count creates and updates, never deletes
            exc = ProviderRetryable(str(exc), status=exc.status)
        if retry.retry_later(exc, attempts, "withdraw_meeting", slot_id):
            return "retry"
        begin_write()
        meeting = meeting_for(slot_id)
        alert_once("meeting_delete_failed", f"meeting_delete_failed:{meeting.id}", meeting.slot,
                   {"failure": meeting.failure.value})
        db.session.commit()
        return "failed"


def delete_failure_of(exc: ProviderError) -> MeetingFailure:
    """The cause, for the host, of a failed delete."""
    return MeetingFailure.IN_PROGRESS if isinstance(exc, MeetingInProgress) else failure_of(exc)


def record_delete_failure(slot_id: int, exc: ProviderError) -> int:
    """The tool did not delete the slot's meeting: it is DELETE_FAILED with why; commits; returns the attempts so far."""
    db.session.rollback()
    log.warning("delete of slot %s's meeting failed: %s", slot_id, detail_of(exc))
    begin_write()
    meeting = meeting_for(slot_id)
    if meeting.status != MeetingStatus.DELETE_FAILED:
        meeting.status, meeting.attempts = MeetingStatus.DELETE_FAILED, 0
    meeting.attempts += 1
    meeting.record_failure(delete_failure_of(exc), f"delete: {detail_of(exc)}")
    attempts = meeting.attempts
    db.session.commit()
    return attempts


def retry_withdraw(slot: Slot) -> MeetingFailure | None:
    """The host pressed 「もう一度削除する」: one attempt now; returns why it failed, or None when it is gone."""
    try:
        withdraw_meeting(slot.id)
    except ProviderError as exc:
        record_delete_failure(slot.id, exc)
        return delete_failure_of(exc)
    return None


@dataclass
class OffResult:
    deleted: int = 0
    #: Meetings the tool refused to delete because they are running now: deleted after their end.
    in_progress: list[Meeting] = field(default_factory=list)
    #: Meetings the tool did not delete, with why for the host: retried on their own, and by hand.
    not_deleted: list[tuple[Meeting, str]] = field(default_factory=list)
    emails_cancelled: int = 0


def turn_off(host: User, tool: VideoTool) -> OffResult:
    """Turn the tool OFF: its URL emails stop and its meetings go; commits.

    The link reads as OFF at once. Each meeting gets one delete attempt now; one the tool did not
    delete is DELETE_FAILED and retried by a job, and the link keeps its grant for that until none
    is left (``tool.finish_off``), then it is revoked and forgotten.
    """
    result = OffResult(emails_cancelled=switch.stop(host, tool))
    db.session.commit()
    for meeting in switch.live_meetings(host.id, tool):
        slot_id = meeting.slot_id
        try:
            result.deleted += withdraw_meeting(slot_id, finish_off=False)
        except ProviderError as exc:
            record_delete_failure(slot_id, exc)
            meeting = meeting_for(slot_id)
            if isinstance(exc, MeetingInProgress):
                retry.withdraw_at(meeting.slot.ends_at + AFTER_END, slot_id)
                result.in_progress.append(meeting)
            else:
                retry.withdraw_now(slot_id)
                result.not_deleted.append((meeting, meeting.last_error))
    tool.finish_off(host.id)
    return result
