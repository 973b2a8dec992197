"""The one retry policy of every call to a video tool, and everything the wing asks of RQ.

Every job that calls a tool (issue, move, delete) is enqueued here with ``TOOL_RETRY`` and
ends in ``retry_later`` when the call fails in a way that can pass:

- the tool named a time (a per-second rate limit's ``Retry-After``, an unanswered create that
  may still appear): the job runs again then, up to MAX_ATTEMPTS attempts;
- otherwise (5xx, timeout, an odd body, a rate limit without a time) RQ's back-off
  (``TOOL_RETRY``) takes over while the job has retries left;
- a daily budget waits for its reset (``queue_issue_at``); dead credentials are never retried
  (the tool marks the link for relinking and the host is emailed).

The URL email's own check of a meeting retries with the outbox instead (``issuing.ready_meeting``).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from rq import Retry, get_current_job

from app import clock
from app.meetings.provider import ProviderError, ProviderRetryable
from app.queue import enqueue_after_commit, get_queue, get_redis

#: Attempts of one job that the tool's own Retry-After may re-schedule before it is given up.
MAX_ATTEMPTS = 6
#: RQ's retries of a job's call after a 5xx, a timeout, a body that is not the tool's JSON, or a
#: rate limit without Retry-After.
TOOL_RETRY = Retry(max=5, interval=[10, 30, 60, 180, 600])
#: How long a slot's queued issue job holds off another (renewed at each attempt): longer than
#: TOOL_RETRY's longest back-off. Past it, a lost job no longer stops the next booking's.
ISSUE_QUEUED_FOR = timedelta(minutes=15)


def _jobs():
    from app import jobs  # jobs import the wing

    return jobs


def _issue_queued_key(slot_id: int) -> str:
    return f"meeting-issue-queued:{slot_id}"


def queue_issue(slot_id: int) -> None:
    """Issue the slot's meeting once this transaction commits, unless its issue job is already
    waiting or will be retried: a busy slot's bookings share one job. ``issue_settled`` clears the mark."""
    enqueue_after_commit(_jobs().issue_meeting, slot_id, retry=TOOL_RETRY,
                         unless_marked=(_issue_queued_key(slot_id), ISSUE_QUEUED_FOR))


def issue_attempt_started(slot_id: int) -> None:
    """This attempt may end in a retry: hold off other issue jobs of the slot as long again."""
    get_redis().expire(_issue_queued_key(slot_id), ISSUE_QUEUED_FOR)


def issue_settled(slot_id: int) -> None:
    """Issuing ended (issued, skipped or given up): the next booking may queue a job again."""
    get_redis().delete(_issue_queued_key(slot_id))


def queue_issue_at(moment: datetime, slot_id: int) -> None:
    """Issue again at ``moment`` (a daily budget's reset); the slot's mark holds until then."""
    get_queue().enqueue_at(moment, _jobs().issue_meeting, slot_id)
    get_redis().expire(_issue_queued_key(slot_id), moment - clock.now() + ISSUE_QUEUED_FOR)


def queue_withdraw(slot_id: int) -> None:
    """Delete the slot's meeting once this transaction commits."""
    enqueue_after_commit(_jobs().withdraw_meeting, slot_id, retry=TOOL_RETRY)


def withdraw_now(slot_id: int) -> None:
    """Delete the slot's meeting by a job at once (outside any transaction)."""
    get_queue().enqueue(_jobs().withdraw_meeting, slot_id, retry=TOOL_RETRY)


def withdraw_at(moment: datetime, slot_id: int) -> None:
    """Delete the slot's meeting at ``moment`` (a running meeting, after its end)."""
    get_queue().enqueue_at(moment, _jobs().withdraw_meeting, slot_id)


def queue_move(slot_id: int) -> None:
    """Move the slot's meeting to its new time once this transaction commits."""
    enqueue_after_commit(_jobs().move_meeting, slot_id, retry=TOOL_RETRY)


def retry_later(exc: ProviderError, attempts: int, job_name: str, slot_id: int) -> bool:
    """Schedule the retry that fits ``exc`` of the job ``job_name`` (a function of ``app.jobs``).

    Returns True when a retry is scheduled here; re-raises for RQ's back-off while the running
    job has retries left; returns False when none is left (the caller gives up).
    """
    if not isinstance(exc, ProviderRetryable):
        return False
    if exc.retry_after is not None and attempts < MAX_ATTEMPTS:
        get_queue().enqueue_in(timedelta(seconds=max(exc.retry_after, 1)), getattr(_jobs(), job_name), slot_id)
        return True
    if _retried_by_rq():
        raise exc
    return False


def _retried_by_rq() -> bool:
    """True inside a job that RQ runs again when it raises (TOOL_RETRY not used up)."""
    job = get_current_job()
    return job is not None and bool(job.retries_left)
