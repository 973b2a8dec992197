"""Background processes: the RQ worker, and the scheduler that sweeps the outbox.

    python worker.py             # RQ worker on the named queues (with RQ's scheduler for retries)
    python worker.py scheduler   # every SWEEP_INTERVAL s, enqueue a sweep when emails are due

The app is built once, before the worker forks its work horses, and each job runs in a fresh
app context (so a fresh database session). The scheduler is what makes delivery independent of
Redis: a job lost with Redis is found again as a due row.
"""
import logging
import os
import sys
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.orm import configure_mappers

from app import create_app, jobs
from app.extensions import db
from app.mail import outbox
from app.queue import QUEUE_NAMES, get_queue, get_redis
from config import Config, ProductionConfig

log = logging.getLogger("worker")

SWEEP_JOB_ID = "mail-sweep"


class AppWorker(Worker):
    """An RQ worker that runs every job inside the app's context."""

    app = None

    def perform_job(self, *args, **kwargs):
        with self.app.app_context():
            return super().perform_job(*args, **kwargs)


def build_app():
    """The app for background processes, with mappers configured before any fork."""
    app = create_app(ProductionConfig if os.environ.get("APP_ENV") == "production" else Config)
    configure_mappers()
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


def enqueue_sweep_if_due() -> bool:
    """Enqueue one outbox sweep when rows are due and no sweep is already waiting or running."""
    if not outbox.due_count():
        return False
    queue = get_queue("mail")
    try:
        status = Job.fetch(SWEEP_JOB_ID, connection=queue.connection).get_status()
        if status in (JobStatus.QUEUED, JobStatus.STARTED):
            return False
    except NoSuchJobError:
        pass
    queue.enqueue(jobs.send_due_mail, job_id=SWEEP_JOB_ID)
    return True


def run_scheduler(app) -> None:
    """Sweep forever; one failed sweep (database or Redis hiccup) does not stop the loop."""
    interval = app.config["SWEEP_INTERVAL"]
    log.info("outbox scheduler: sweeping every %ss", interval)
    while True:
        with app.app_context():
            try:
                enqueue_sweep_if_due()
            except Exception:
                log.exception("sweep failed; trying again in %ss", interval)
            finally:
                db.session.remove()
        time.sleep(interval)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app()
    wait_for_redis(app)
    if argv[1:2] == ["scheduler"]:
        run_scheduler(app)
        return
    AppWorker.app = app
    with app.app_context():
        queues = [get_queue(name) for name in QUEUE_NAMES]
        worker = AppWorker(queues, connection=get_redis())
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main(sys.argv)
