"""Background processes: the RQ worker, and the scheduler that sweeps the outbox.

    python worker.py             # RQ worker on the named queues (with RQ's scheduler for retries)
    python worker.py scheduler   # enqueue outbox sweeps when emails are due

The app is built once, before the worker forks its work horses, and each job runs in a fresh
app context (so a fresh database session). The scheduler is what makes delivery independent of
Redis: a job lost with Redis is found again as a due row. It wakes up when the next email is
due (at least every SWEEP_INTERVAL s) and starts one sweep per worker, so a burst of due
emails is sent by all workers in parallel.
"""
import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from flask import current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app import clock, create_app, jobs
from app.extensions import db
from app.mail import outbox
from app.messages import bulk
from app.queue import QUEUE_NAMES, get_queue, get_redis
from app.warmup import warm_up
from config import Config, ProductionConfig

log = logging.getLogger("worker")

#: Sweep jobs are ``mail-sweep-0`` … ``mail-sweep-<workers - 1>``: deterministic, so a sweep is
#: never queued twice. (RQ 3 job ids allow only letters, digits, ``_`` and ``-``: no colon.)
SWEEP_JOB_ID = "mail-sweep"


class AppWorker(Worker):
    """An RQ worker that runs every job inside the app's context."""

    app = None
    #: SIGTERM/SIGINT asked this worker to stop (RQ's work loop also returns on its own errors).
    stop_asked = False

    def perform_job(self, *args, **kwargs):
        with self.app.app_context():
            return super().perform_job(*args, **kwargs)

    def request_stop(self, signum, frame):
        self.stop_asked = True
        super().request_stop(signum, frame)


def build_app():
    """The app for background processes, warmed up before any fork."""
    app = create_app(ProductionConfig if os.environ.get("APP_ENV") == "production" else Config)
    warm_up(app, templates="email/")
    with app.app_context():
        db.engine.dispose()  # never share pooled connections with forked work horses
    return app


def wait_for_redis(app, seconds: float = 30) -> None:
    """Block until Redis answers (the run command starts everything at once)."""
    deadline = time.monotonic() + seconds
    with app.app_context():
        while True:
            try:
                get_redis().ping()
                return
            except RedisConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


def enqueue_sweeps_if_due() -> int:
    """Enqueue outbox sweeps when rows are due; return how many were enqueued.

    One sweep per worker listening on ``mail`` (at least one, at most one per due batch), so
    that every worker sends part of a burst; the sweeps share the rows through the outbox's
    atomic claim. A sweep still waiting, or running on a live worker, is not queued again.
    """
    due = outbox.due_count()
    if not due:
        return 0
    queue = get_queue("mail")
    batches = math.ceil(due / current_app.config["MAIL_BATCH_SIZE"])
    wanted = max(1, min(Worker.count(connection=queue.connection, queue=queue), batches))
    enqueued = 0
    for slot in range(wanted):
        job_id = f"{SWEEP_JOB_ID}-{slot}"
        if not _job_in_progress(job_id, queue.connection):
            queue.enqueue(jobs.send_due_mail, job_id=job_id)
            enqueued += 1
    return enqueued


def _job_in_progress(job_id: str, connection) -> bool:
    """True when the sweep ``job_id`` is waiting in the queue or running on a live worker."""
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    status = job.get_status()
    if status == JobStatus.QUEUED:
        queue = Queue(job.origin, connection=connection)
        if queue.get_job_position(job_id) is not None:
            return True
        # Marked queued, yet not in its queue: a worker took it (RQ moves it to the queue's
        # intermediate list) and was killed before starting it (rq/rq#2236). Nobody will run it,
        # and RQ's maintenance fails it only a minute or more later: start anew. (A live worker
        # caught in that instant finds the job gone and takes the next one; were it already
        # past that, two sweeps would share the due rows, which the atomic claim allows.)
        log.warning("sweep %s was taken by a worker that never started it; enqueueing it again", job_id)
        connection.lrem(queue.intermediate_queue_key, 0, job_id)
        job.delete()
        return False
    if status != JobStatus.STARTED:
        return False
    if (job.worker_name and connection.exists(Worker.redis_worker_namespace_prefix + job.worker_name)
            and not _heartbeat_stale(job)):
        return True
    # Its worker was killed (SIGKILL, OOM): RQ marks the job abandoned only at a maintenance
    # pass, up to ~14 min later (rq/rq registry.py, worker/base.py), and a dead worker's key
    # lives on for job_monitoring_interval + 60 s after its last heartbeat (blocking this sweep,
    # and every due email behind it, for that long: tests/test_faults.py). A worker beats every
    # WORKER_HEARTBEAT s while the job runs, so a silent one is gone: drop the job and start
    # anew; the rows it had claimed come back after MAIL_CLAIM_TIMEOUT.
    log.warning("sweep %s was started by worker %s, which is gone; enqueueing it again", job_id, job.worker_name)
    job.delete()
    return False


def _heartbeat_stale(job: Job) -> bool:
    """True when the worker running ``job`` has missed three heartbeats (RQ's clock: real UTC time)."""
    if job.last_heartbeat is None:
        return False
    age = datetime.now(timezone.utc) - clock.as_utc(job.last_heartbeat)
    return age.total_seconds() > 3 * current_app.config["WORKER_HEARTBEAT"]


def seconds_until_next_sweep(interval: float) -> float:
    """How long the scheduler may sleep: until the next row becomes due, at most ``interval``.

    The cap is what finds rows written after this look (or whose send job was lost).
    """
    next_due = outbox.next_due_at()
    if next_due is None:
        return interval
    return min(max((next_due - clock.now()).total_seconds(), 0.0), interval)


PREFLIGHT_JOB_ID = "zoom-preflight"
PREFLIGHT_EVERY = 60  # seconds
ATTENDANCE_JOB_ID = "attendance-finalize"


def scheduler_pass(now_monotonic: float, last_preflight: float) -> float:
    """One pass: start due bulk messages, enqueue outbox sweeps, and the Zoom pre-flight each minute."""
    bulk.start_due_messages()
    enqueue_sweeps_if_due()
    if now_monotonic - last_preflight >= PREFLIGHT_EVERY:
        queue = get_queue()
        if not _job_in_progress(PREFLIGHT_JOB_ID, queue.connection):
            queue.enqueue(jobs.run_preflights, job_id=PREFLIGHT_JOB_ID)
        # Attendance: absentees of lessons that ended without the tool's meeting.ended.
        if not _job_in_progress(ATTENDANCE_JOB_ID, queue.connection):
            queue.enqueue(jobs.finalize_attendance, job_id=ATTENDANCE_JOB_ID)
        return now_monotonic
    return last_preflight


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (a process manager stopping us, or Ctrl-C): the loop ends
    after its current pass instead of dying mid-pass with a traceback."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop.set())
    return stop


def run_scheduler(app, stop: threading.Event | None = None) -> None:
    """Run passes until ``stop`` is set; one failed pass (database or Redis hiccup) does not stop the loop.

    Only the holder of a Redis lock works, so a second scheduler started by mistake waits as a
    standby (everything it would do is idempotent anyway: atomic claims, deterministic job ids).
    On stop the lock is released, so a standby takes over at its next look.
    """
    stop = stop or threading.Event()
    interval = app.config["SWEEP_INTERVAL"]
    log.info("scheduler: sweeping when emails are due, looking at least every %ss", interval)
    last_preflight = 0.0
    with app.app_context():
        leader = get_redis().lock("scheduler-leader", timeout=max(10, 5 * interval))
    while not stop.is_set():
        wait = interval
        with app.app_context():
            try:
                if _lead(leader):
                    last_preflight = scheduler_pass(time.monotonic(), last_preflight)
                    wait = seconds_until_next_sweep(interval)
            except Exception:
                log.exception("scheduler pass failed; trying again in %ss", interval)
            finally:
                db.session.remove()
        stop.wait(wait)
    with app.app_context():
        try:
            if leader.owned():
                leader.release()
        except (LockError, RedisConnectionError, RedisTimeoutError):
            pass  # the lock expires by itself
    log.info("scheduler: stopped")


def _lead(leader) -> bool:
    """Hold (or take over) the scheduler lock; False while another scheduler holds it."""
    try:
        if leader.owned():
            return leader.reacquire()
    except LockError:
        pass
    return leader.acquire(blocking=False)


#: The interpreter's switch interval in a worker (the default is 5 ms): a sending worker's SMTP
#: lanes (``app/mail/smtp.py``) wait on sockets while its main thread renders, and a lane whose
#: reply arrived must get the GIL from the rendering thread at once, not after up to 5 ms.
SWITCH_INTERVAL = 0.0005


@contextmanager
def quick_thread_switches(interval: float = SWITCH_INTERVAL):
    """Lower the switch interval for this process (its forked work horses inherit it); restore it on exit."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, before))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app()
    wait_for_redis(app)
    if argv[1:2] == ["scheduler"]:
        run_scheduler(app, stop_on_signals())
        return
    with quick_thread_switches():
        run_worker(app)


def run_worker(app) -> None:
    """Run the RQ worker until it is asked to stop; start a new one when RQ's quits by itself.

    RQ's work loop quits, with exit status 0, on any error outside a job: a Redis restart while
    a job runs ends a busy worker (tests/test_faults.py), and a process manager that restarts
    only failed processes would leave the queue without it. The work horse it leaves behind
    finishes its job; the outbox rows it had claimed are marked or come back after the claim
    timeout.
    """
    AppWorker.app = app
    while True:
        with app.app_context():
            queues = [get_queue(name) for name in QUEUE_NAMES]
            worker = AppWorker(queues, connection=get_redis(), job_monitoring_interval=app.config["WORKER_HEARTBEAT"])
        try:
            worker.work(with_scheduler=True)
        except (RedisConnectionError, RedisTimeoutError):  # raised by RQ's teardown with Redis still away
            if worker.stop_asked:  # stopping anyway: Redis went first (e.g. stopped together with us)
                log.info("the RQ worker stopped; Redis was already gone")
                return
            log.exception("the RQ worker lost Redis")
        if worker.stop_asked:
            return
        log.warning("the RQ worker quit without being asked to (Redis lost?); starting a new one")
        wait_for_redis(app, seconds=300)


if __name__ == "__main__":
    main(sys.argv)
