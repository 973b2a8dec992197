"""Redis and RQ queues, and enqueueing that waits for the database commit.

A job enqueued before the commit can run before its rows are visible (microblog's race), so
domain code calls ``enqueue_after_commit`` and the job is pushed only once the transaction
succeeds. If Redis is down at that moment nothing is lost: the scheduler's outbox sweep
finds the due rows (see ``mail.outbox``).
"""
import logging
from contextlib import contextmanager
from datetime import timedelta

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import event

from app.extensions import db

log = logging.getLogger(__name__)

#: Queues by purpose. ``mail`` sends email; ``default`` runs everything else.
QUEUE_NAMES = ("mail", "default")

_PENDING_KEY = "enqueue_after_commit"
_BATCH_KEY = "enqueue_batch_after_commit"
_SWEEP_ONLY_KEY = "leave_to_the_sweep"


def get_redis() -> Redis:
    """The app's Redis connection (one pool per app)."""
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = Redis.from_url(current_app.config["REDIS_URL"])
    return ext["redis"]


def get_queue(name: str = "default") -> Queue:
    """The named RQ queue on the app's Redis."""
    return Queue(name, connection=get_redis())


def enqueue_after_commit(func, *args, queue: str = "default", job_id: str | None = None, session=None,
                         unless_marked: tuple[str, timedelta] | None = None, **options) -> None:
    """Enqueue ``func(*args)`` once the transaction of ``session`` (default ``db.session``) commits.

    :param unless_marked: ``(key, ttl)``: enqueue only if that Redis key is not set, and set it
        for ``ttl``: the job (or whoever settles its work) deletes it. Repeats of the same work
        queued meanwhile are dropped.
    """
    pending = (session or db.session).info.setdefault(_PENDING_KEY, [])
    pending.append((func, args, queue, job_id, unless_marked, options))


def enqueue_batch_after_commit(func, item, *, queue: str = "default", session=None) -> None:
    """Collect ``item`` and, once the transaction commits, enqueue ``func(items)`` a single time."""
    batches = (session or db.session).info.setdefault(_BATCH_KEY, {})
    if func not in batches:
        # The list is shared with the pending entry, so it still grows until the commit.
        batches[func] = []
        enqueue_after_commit(func, batches[func], queue=queue, session=session)
    batches[func].append(item)


@contextmanager
def leave_to_the_sweep(session=None):
    """Within this block, commits enqueue nothing: the scheduler's outbox sweep sends the due emails.

    For commands that run before Redis is up, such as ``flask seed-demo`` in ``make run`` (honcho
    starts Redis after it): each commit would otherwise try Redis and log "could not enqueue".
    Only for work a sweep finds by itself (outbox rows); other jobs queued meanwhile are dropped.
    """
    info = (session or db.session).info
    info[_SWEEP_ONLY_KEY] = True
    try:
        yield
    finally:
        info.pop(_SWEEP_ONLY_KEY, None)


def _run_pending(session) -> None:
    session.info.pop(_BATCH_KEY, None)
    pending = session.info.pop(_PENDING_KEY, [])
    if session.info.get(_SWEEP_ONLY_KEY):
        return
    for func, args, queue, job_id, unless_marked, options in pending:
        try:
            if unless_marked is not None:
                key, ttl = unless_marked
                if not get_redis().set(key, 1, nx=True, ex=ttl):
                    continue
            get_queue(queue).enqueue(func, *args, job_id=job_id, **options)
        except RedisError as exc:  # Redis down: the outbox sweep still delivers; never fail a committed request
            log.warning("could not enqueue %s (%s); the scheduler sweep will pick the work up", func.__name__, exc)


def _drop_pending(session, *args) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_BATCH_KEY, None)


def init_queue(app) -> None:
    """Hook the after-commit enqueueing into the app's session (called once by the factory)."""
    if not event.contains(db.session, "after_commit", _run_pending):
        event.listen(db.session, "after_commit", _run_pending)
        event.listen(db.session, "after_rollback", _drop_pending)
