"""Driving time for the fault suites: the app's clock moves, and what would run meanwhile runs —
RQ's scheduled jobs whose time has come (Retry back-offs, Retry-After, enqueue_at), the queued
jobs in this process, and the outbox sweep."""
import time

from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app import clock
from app.extensions import db
from app.mail import outbox
from app.queue import QUEUE_NAMES, get_queue, get_redis


class BurstWorker(SimpleWorker):
    """RQ's SimpleWorker in the test process, without the command channel (pub/sub): the same
    jobs run the same way, without the ~0.8 s the channel's thread takes to stop after each run."""

    app = None

    def perform_job(self, *args, **kwargs):
        with self.app.app_context():
            return super().perform_job(*args, **kwargs)

    def subscribe(self):
        pass

    def unsubscribe(self):
        pass


class JobDriver:
    """Moves the app's clock (and ``on_travel``'s, an emulator's) and runs what would run meanwhile."""

    #: Seconds to let an emulator finish requests the client gave up on.
    settle = 0.0

    def __init__(self, app, on_travel=None):
        self.app = app
        self.on_travel = on_travel
        #: (job function, when RQ was told to run it: Unix seconds) of every scheduled job released
        self.released: list[tuple[str, float]] = []

    def release_scheduled(self) -> int:
        """Enqueue RQ's scheduled jobs (Retry intervals, enqueue_at) due on the app's clock."""
        moved = 0
        for name in QUEUE_NAMES:
            queue = get_queue(name)
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(int(clock.now().timestamp())):
                job = Job.fetch(job_id, connection=queue.connection)
                self.released.append((job.func_name, queue.connection.zscore(registry.key, job_id)))
                registry.remove(job)
                queue.enqueue_job(job)
                moved += 1
        return moved

    def pump(self, rounds: int = 40) -> None:
        """Run jobs, retries and sweeps until nothing is left to do at this moment."""
        def queued() -> bool:
            return any(len(get_queue(name)) for name in QUEUE_NAMES)

        for _ in range(rounds):
            ran = queued()
            if ran:
                BurstWorker.app = self.app
                BurstWorker([get_queue(name) for name in QUEUE_NAMES], connection=get_redis()).work(
                    burst=True, logging_level="WARNING")
                db.session.rollback()
                time.sleep(self.settle)
            sent = outbox.send_due()
            db.session.rollback()
            released = self.release_scheduled()
            if not (ran or sent or released or outbox.due_count() or queued()):
                return
        raise AssertionError("the jobs never settled")

    def travel_to(self, moment) -> None:
        clock.travel_to(moment)
        if self.on_travel is not None:
            self.on_travel(moment)
