"""Proof under faults: real worker processes killed, Redis emptied, SMTP and Zoom failing, clock edges.

Every test here can fail: it drives the real parts (``python worker.py`` subprocesses, the
session's redis-server, aiosmtpd servers, the Zoom emulator) into a fault and then checks a
history — what the SMTP server received, what the outbox rows say — against the promise:
0 emails lost, duplicates only inside the window between SMTP's 250 and the row's mark.

    .venv/bin/python -m pytest -m faults -s                  # the shortened run (CI, ~40 s)
    FAULTS_FULL=1 .venv/bin/python -m pytest -m faults -s    # 2,000 emails, 20 kills (+ the scheduler)

``-s`` shows the figures each test prints (copied into docs/RELIABILITY.md).
"""
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from rq import Worker
from sqlalchemy import func, insert, select

from app import clock
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus, User
from tests.conftest import free_port, wait_until
from tests.drivers import JobDriver

ROOT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("FAULTS_FULL") == "1"

pytestmark = pytest.mark.faults


def figures(title: str, **values) -> None:
    """Print one line of figures (``-s`` shows them; docs/RELIABILITY.md quotes them)."""
    print(f"\n[faults] {title}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


# --- an SMTP server that records its history ---------------------------------------------------------

class RecordingSink:
    """An aiosmtpd handler that records (arrival time, recipient, Message-ID) of every accepted mail."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, str, str]] = []
        #: Seconds before each 250, as a relay farther away takes.
        self.latency = 0.0

    async def handle_DATA(self, server, session, envelope):
        if self.latency:
            await asyncio.sleep(self.latency)
        message_id = ""
        for line in envelope.content.split(b"\r\n"):
            if not line:
                break  # end of the headers
            if line[:11].lower() == b"message-id:":
                message_id = line[11:].strip().decode()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrivals.append((time.time(), rcpt, message_id))
        return "250 OK"

    def count(self) -> int:
        return len(self.arrivals)

    def recipients(self) -> Counter:
        with self.lock:
            return Counter(rcpt for _, rcpt, _ in self.arrivals)


@pytest.fixture
def sink():
    handler = RecordingSink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


# --- real worker processes ------------------------------------------------------------------------

class Fleet:
    """``python worker.py`` (and ``worker.py scheduler``) subprocesses started by this test.

    RQ forks a work horse per job and the horse calls ``setpgrp()``, so it is not in its worker's
    process group: ``kill`` finds it among the worker's children and SIGKILLs both — the harshest
    death (no cleanup, no ``finally``, the job left STARTED in Redis, the claim left SENDING).
    """

    def __init__(self, env: dict, logdir: Path):
        self.env = env
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.generation = Counter()
        self.children: set[int] = set()  # every process the workers forked, killed again on stop

    def start(self, name: str, *args: str) -> subprocess.Popen:
        self.generation[name] += 1
        log = open(self.logdir / f"{name}.{self.generation[name]}.log", "wb")
        proc = subprocess.Popen([sys.executable, "worker.py", *args], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs[name] = proc
        self.started[name] = time.monotonic()
        return proc

    def children_of(self, name: str) -> list[tuple[int, bool]]:
        """The processes the worker ``name`` forked, from /proc: (pid, is it a work horse).

        A work horse leads its own process group (``setpgrp``); RQ's scheduler process, which a
        worker started ``with_scheduler`` also forks, stays in the worker's group.
        """
        parent, found = self.procs[name].pid, []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid, ppid, pgid = int(entry.name), int(fields[1]), int(fields[2])
                if ppid == parent:
                    found.append((pid, pgid == pid))
        self.children.update(pid for pid, _ in found)
        return found

    def kill(self, name: str, horse_only: bool = False) -> int:
        """SIGKILL the worker's work horse, and unless ``horse_only`` the worker and all it forked.

        Returns how many work horses were killed (0: the worker was between two jobs).
        """
        children = self.children_of(name)
        proc = self.procs[name]
        victims = [pid for pid, horse in children if horse or not horse_only]
        if not horse_only:
            _kill(proc.pid)
        for pid in victims:
            _kill(pid)
        if not horse_only:
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL, f"{name} ended with {proc.returncode}, not by the SIGKILL"
        for pid in victims:  # each one is dead (a zombie until its parent, or init, reaps it)
            wait_until(lambda: _dead(pid), timeout=10)
        return sum(horse for _, horse in children)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logdir / f"{name}.{self.generation[name]}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def tails(self) -> str:
        """The end of every log (FAULTS_LOG_LINES lines each, default 15), for a failure message."""
        lines = int(os.environ.get("FAULTS_LOG_LINES", 15))
        return "\n".join(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                         for path in sorted(self.logdir.iterdir()))

    def stop(self) -> None:
        """SIGKILL every process started here and every work horse they forked (by pid, nothing else)."""
        for name in self.procs:
            self.children_of(name)
        for proc in self.procs.values():
            _kill(proc.pid)
            proc.wait(timeout=10)
        for pid in self.children:
            _kill(pid)
        self.procs.clear()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _dead(pid: int) -> bool:
    """The process is gone, or a zombie (dead, not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def fleet_is_quiet(fleet, redis: Redis, workers: list[str]) -> bool:
    """Nothing can send any more: no send or sweep job waits, no worker RQ knows is busy, and no work
    horse (the only process that sends) is alive. The last one also covers a worker whose
    registration went with a Redis restarted empty."""
    from app.queue import get_queue

    mail = get_queue("mail")
    if len(mail) or mail.intermediate_queue.get_job_ids():
        return False
    states = worker_states(redis)
    if any(states.get(fleet.procs[name].pid) == "busy" for name in workers):
        return False
    return not [pid for name in workers for pid, horse in fleet.children_of(name) if horse and not _dead(pid)]


@pytest.fixture
def fleet_env(app, redis_url, sink, tmp_path):
    """The environment of the product's background processes, pointing at this test's parts."""
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=redis_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(sink.port),
        SECRET_KEY=app.config["SECRET_KEY"],
        TOKEN_ENCRYPTION_KEY=app.config["TOKEN_ENCRYPTION_KEY"],
        APP_BASE_URL=app.config["APP_BASE_URL"],
        MAILBOX_DIR=str(tmp_path / "mailbox"),
        MAIL_CLAIM_TIMEOUT="5",  # a dead worker's rows come back after 5 s (production: 300)
        WORKER_HEARTBEAT="2",  # a dead worker's sweep starts again after 3 × 2 s (production: 3 × 5)
        # A claim must outlive its batch, or a live worker loses it mid-batch (production: 200
        # rows, ~1–4 s, against 300 s). 50 rows keep a tenfold margin on a loaded CI box.
        MAIL_BATCH_SIZE="50",
        PYTHONUNBUFFERED="1",
    )
    env.pop("APP_ENV", None)
    return env


@pytest.fixture
def fleet(fleet_env, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    started = Fleet(fleet_env, logdir)
    yield started
    started.stop()


def worker_states(redis: Redis) -> dict[int, str]:
    """RQ's view of the live workers: pid -> state (``busy``, ``idle`` …)."""
    return {w.pid: w.get_state() for w in Worker.all(connection=redis)}


def create_users(n: int) -> list[tuple[int, str, str]]:
    """N accounts in one bulk insert (their passwords are never checked here); (id, email, name)s."""
    now = clock.now()
    db.session.execute(insert(User), [
        {"email": f"fault{i}@example.com", "password_hash": "not-a-hash", "display_name": f"利用者 {i}",
         "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "created_at": now}
        for i in range(n)
    ])
    db.session.commit()
    return [tuple(row) for row in db.session.execute(
        select(User.id, User.email, User.display_name).where(User.email.like("fault%")).order_by(User.id))]


def stuck() -> str:
    """What holds undelivered rows (for a failure message): claims, due count, RQ's sweeps."""
    from rq.job import Job

    from app.queue import get_queue, get_redis

    db.session.rollback()
    claims = db.session.execute(select(Delivery.claimed_at, func.count()).where(
        Delivery.status == DeliveryStatus.SENDING).group_by(Delivery.claimed_at)).all()
    sweeps = {}
    for job_id in ("mail-sweep-0", "mail-sweep-1", "mail-sweep-2"):
        try:
            job = Job.fetch(job_id, connection=get_redis())
            sweeps[job_id] = (job.get_status(), job.worker_name, job.last_heartbeat)
        except Exception as exc:  # gone
            sweeps[job_id] = type(exc).__name__
    mail = get_queue("mail")
    lists = {"queue": mail.job_ids, "intermediate": mail.intermediate_queue.get_job_ids()}
    return f"now {clock.now()}, claims {claims}, due {outbox.due_count()}, sweeps {sweeps}, lists {lists}"


def statuses() -> dict[str, int]:
    db.session.rollback()  # a fresh snapshot: what the workers committed
    return {status.value: count for status, count in db.session.execute(
        select(Delivery.status, func.count()).group_by(Delivery.status)).all()}


# --- 1. SIGKILL storm -------------------------------------------------------------------------------

def test_sigkill_storm_loses_nothing_and_duplicates_only_what_a_killed_horse_had_sent(app, redis_url, sink, fleet):
    n, max_kills, interval = (2000, 20, 0.5) if FULL else (300, 3, 0.5)
    # A relay 20 ms away and two lanes a worker: the emails take seconds, not the half second a
    # sink next door takes, so the kills fall while they are being sent.
    lanes = 2
    sink.latency = 0.02
    fleet.env["MAIL_SMTP_MAX_CONNECTIONS"] = str(lanes)
    redis = Redis.from_url(redis_url)
    users = create_users(n)
    workers = ["worker1", "worker2"]
    for name in workers:
        fleet.start(name)
    fleet.start("scheduler", "scheduler")
    wait_until(lambda: len(worker_states(redis)) >= 2, timeout=30)

    due_at = clock.now() + timedelta(seconds=1.5)
    for user_id, email_address, name in users:
        outbox.queue_email("password_reset", to_email=email_address, to_name=name, payload={"user_id": user_id},
                           due_at=due_at)
    db.session.commit()
    due = due_at.timestamp()

    kills = []  # (seconds after the due time, victim, what, horses killed, mails received before)
    scheduler_killed_at = None
    deadline = time.monotonic() + (240 if FULL else 90)
    checked = 0.0

    def done() -> bool:
        """Every recipient served, and every row marked: a row killed between SMTP's 250 and its
        mark stays SENDING until its claim expires, then is sent again (the duplicate window)."""
        nonlocal checked
        if len(sink.recipients()) < n or time.monotonic() - checked < 0.25:
            return False
        checked = time.monotonic()
        return statuses() == {"sent": n}

    while not done():
        assert time.monotonic() < deadline, (f"only {len(sink.recipients())} of {n} arrived; "
                                             f"rows: {statuses()}; {stuck()}; kills: {kills}\n{fleet.tails()}")
        fleet.check_alive()
        if len(kills) < max_kills and time.time() >= due + (kills[-1][0] + interval if kills else 0):
            # Kill a worker in the middle of a batch: one RQ sees busy (its horse is sending).
            states = worker_states(redis)
            busy = [w for w in workers if states.get(fleet.procs[w].pid) == "busy"]
            if busy:
                # Alternate the two deaths: the whole worker (machine or container lost: RQ only
                # notices when its key expires) and the work horse alone (OOM killer: the worker
                # sees it die and fails the job at once).
                victim, horse_only = min(busy, key=lambda w: fleet.started[w]), len(kills) % 2 == 1
                horses = fleet.kill(victim, horse_only=horse_only)
                kills.append((round(time.time() - due, 2), victim, "horse" if horse_only else "worker",
                              horses, sink.count()))
                if not horse_only:
                    fleet.start(victim)
                if FULL and len(kills) == max_kills // 2:
                    # The scheduler too, once: its successor waits for the dead one's leader
                    # lock to expire (10 s) before it sweeps again.
                    fleet.kill("scheduler")
                    scheduler_killed_at = round(time.time() - due, 2)
                    fleet.start("scheduler", "scheduler")
        time.sleep(0.02)
    drained = time.time() - due
    wait_until(lambda: fleet_is_quiet(fleet, redis, workers), timeout=30)  # a duplicate would have arrived by then

    received = sink.recipients()
    duplicates = sum(count - 1 for count in received.values())
    horse_kills = sum(horses for *_, horses, _ in kills)
    rows = statuses()
    figures("sigkill", emails=n, kills=len(kills), horses_killed=horse_kills, received=sink.count(),
            distinct=len(received), duplicates=duplicates, drained_s=f"{drained:.1f}", rows=rows,
            scheduler_killed_at_s=scheduler_killed_at,
            history=[f"{at}s {victim} {what}(+{horses} horse) after {before} mails"
                     for at, victim, what, horses, before in kills])
    # The storm happened: the kills fell while the emails were being sent, and killed work horses.
    assert len(kills) >= (max_kills // 2 if FULL else max_kills), kills
    assert horse_kills >= 1 and all(before < n for *_, before in kills), kills
    assert set(received) == {email_address for _, email_address, _ in users}  # 0 lost
    assert rows == {"sent": n}  # every row marked sent
    # Only a work horse sends: each one killed can have had at most the emails its SMTP lanes had
    # in hand (one sending per lane and one waiting per lane) between SMTP's 250 and their mark,
    # and those sent awaiting their mark together, and each copy carries the same Message-ID as
    # the one that counts.
    assert duplicates <= horse_kills * (2 * lanes + outbox._Marks.GATHER_ROWS)
    message_ids = {}
    for _, rcpt, message_id in sink.arrivals:
        assert message_ids.setdefault(rcpt, message_id) == message_id, f"{rcpt}: two different Message-IDs"


def test_a_sweep_whose_worker_stopped_beating_is_started_again(app, make_host):
    """The fix the storm above needed, in isolation: RQ keeps a SIGKILLed worker's key for
    job_monitoring_interval + 60 s, so the key alone says "alive"; the job's heartbeat does not."""
    import worker
    from rq.job import Job, JobStatus

    from app.queue import get_queue, get_redis

    host = make_host()
    outbox.queue_email("password_reset", to_email=host.email, payload={"user_id": host.id})
    db.session.commit()
    get_queue("mail").empty()  # leave the row to the scheduler
    registered = Worker([get_queue("mail")], connection=get_redis())
    registered.register_birth()  # its key exists, as a killed worker's does for a while
    try:
        assert worker.enqueue_sweeps_if_due() == 1
        sweep = Job.fetch("mail-sweep-0", connection=get_redis())
        get_queue("mail").remove(sweep)
        sweep.worker_name = registered.name
        sweep.set_status(JobStatus.STARTED)
        sweep.last_heartbeat = datetime.now(timezone.utc)
        sweep.save()
        assert worker.enqueue_sweeps_if_due() == 0  # beating: it is running
        beats = app.config["WORKER_HEARTBEAT"]
        sweep.last_heartbeat = datetime.now(timezone.utc) - timedelta(seconds=3 * beats + 1)
        sweep.save()
        assert worker.enqueue_sweeps_if_due() == 1  # three beats missed: killed, started again
        assert get_queue("mail").job_ids == ["mail-sweep-0"]
    finally:
        registered.register_death()


def test_a_sweep_taken_by_a_worker_killed_before_starting_it_is_started_again(app, make_host):
    """Found by the storm on PostgreSQL: a worker killed between taking a sweep (RQ moves it to
    the queue's intermediate list) and starting it leaves it "queued" in no queue at all."""
    import worker
    from rq.job import Job, JobStatus

    from app.queue import get_queue, get_redis

    host = make_host()
    outbox.queue_email("password_reset", to_email=host.email, payload={"user_id": host.id})
    db.session.commit()
    mail = get_queue("mail")
    mail.empty()
    assert worker.enqueue_sweeps_if_due() == 1
    assert worker.enqueue_sweeps_if_due() == 0  # waiting in the queue
    get_redis().lmove(mail.key, mail.intermediate_queue_key)  # a worker takes it … and is SIGKILLed
    assert Job.fetch("mail-sweep-0", connection=get_redis()).get_status() == JobStatus.QUEUED
    assert worker.enqueue_sweeps_if_due() == 1  # not waiting anywhere: started again
    assert mail.job_ids == ["mail-sweep-0"] and mail.intermediate_queue.get_job_ids() == []


# --- 2. Redis emptied and restarted without its data ------------------------------------------------

class RedisServer:
    """A redis-server of this test only (no persistence), so it can be flushed, shut down and restarted."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> "RedisServer":
        self.workdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=10)
        client.close()
        return self

    def restart_empty(self, down_for: float = 0.5) -> None:
        """``SHUTDOWN NOSAVE``, stay down a moment, start again on the same port: everything is gone."""
        client = Redis.from_url(self.url)
        try:
            client.shutdown(nosave=True)
        except Exception:  # the server closes the connection as it goes
            pass
        client.close()
        self.proc.wait(timeout=10)
        time.sleep(down_for)
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pings(client: Redis) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


@pytest.fixture
def own_redis(app, fleet, tmp_path, monkeypatch):
    """A Redis for this test alone, used by the app in this process and by the fleet's processes."""
    server = RedisServer(tmp_path / "own-redis").start()
    monkeypatch.setitem(app.config, "REDIS_URL", server.url)
    monkeypatch.setitem(app.extensions, "redis", Redis.from_url(server.url))  # what get_redis() returns
    fleet.env["REDIS_URL"] = server.url
    yield server
    fleet.stop()  # before the server goes: the workers must not outlive it
    server.stop()


def test_redis_flushed_then_restarted_empty_loses_nothing(app, own_redis, fleet, sink):
    from app.queue import get_queue, get_redis

    n = 1000 if FULL else 200  # half due now, half due a few seconds later
    users = create_users(n)
    now_half, later_half = users[: n // 2], users[n // 2:]
    for start in range(0, len(now_half), 10):  # one transaction, and one send job, per 10 emails
        for user_id, email_address, name in now_half[start:start + 10]:
            outbox.queue_email("password_reset", to_email=email_address, to_name=name, payload={"user_id": user_id})
        db.session.commit()
    later = clock.now() + timedelta(seconds=8)
    for user_id, email_address, name in later_half:  # only the scheduler's sweep sends these
        outbox.queue_email("password_reset", to_email=email_address, to_name=name, payload={"user_id": user_id},
                           due_at=later)
    db.session.commit()
    queued = len(get_queue("mail"))
    assert queued == len(now_half) // 10

    get_redis().flushall()  # 1. every queued send job is gone
    assert len(get_queue("mail")) == 0
    started = time.time()
    for name in ("worker1", "worker2"):
        fleet.start(name)
    fleet.start("scheduler", "scheduler")

    # 2. Mid-drain, Redis goes down and comes back empty (no persistence): workers, sweeps in
    #    flight, the scheduler's leader lock, RQ's registries are all gone.
    wait_until(lambda: sink.count() >= len(now_half) // 4, timeout=30)
    restarted_after = sink.count()
    own_redis.restart_empty()
    restarted_at = time.time() - started

    wait_until(lambda: len(sink.recipients()) >= n or fleet.check_alive(), timeout=60 if FULL else 40)
    drained = time.time() - started
    redis = Redis.from_url(own_redis.url)
    wait_until(lambda: statuses() == {"sent": n} and fleet_is_quiet(fleet, redis, ["worker1", "worker2"]),
               timeout=30)  # nothing more can be sent
    fleet.check_alive()  # nobody died of the lost connection
    received = sink.recipients()
    duplicates = sum(count - 1 for count in received.values())
    rows = statuses()
    late = max(t for t, rcpt, _ in sink.arrivals if rcpt in {e for _, e, _ in later_half}) - later.timestamp()
    figures("redis", emails=n, send_jobs_flushed=queued, restarted_at_s=f"{restarted_at:.1f}",
            received_before_restart=restarted_after, received=sink.count(), duplicates=duplicates,
            drained_s=f"{drained:.1f}", later_half_last_late_s=f"{late:.1f}", rows=rows)
    assert set(received) == {email_address for _, email_address, _ in users}  # 0 lost
    assert rows == {"sent": n}
    assert duplicates == 0  # nobody was killed: no email can be sent twice


# --- 3. SMTP: temporary refusals, dropped connections, permanent 550 -------------------------------

class FlakySmtp:
    """An aiosmtpd handler that follows a script per recipient, one step per SMTP transaction.

    Steps: ``ok``; ``421@RCPT`` / ``452@RCPT`` / ``550@RCPT`` (refuse the recipient);
    ``451@DATA`` / ``421@DATA`` (refuse the message after its final dot); ``drop`` (close the
    connection after the final dot, before any reply: nothing kept); ``lost250`` (keep the
    message, then close before the 250 reaches the client: RFC 1047's duplicate). A recipient
    whose script is used up gets ``ok``. Every transaction is logged with the app's clock.
    """

    def __init__(self, scripts: dict[str, list[str]]):
        self.scripts = {address: list(steps) for address, steps in scripts.items()}
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, object]] = []  # (recipient, step, app clock)
        self.kept: list[tuple[str, str]] = []  # (recipient, Message-ID)

    def _step(self, address: str) -> str:
        with self.lock:
            script = self.scripts.get(address) or []
            step = script.pop(0) if script else "ok"
            self.log.append((address, step, clock.now()))
            return step

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        step = self._step(address)
        if step.endswith("@RCPT"):
            code = step.split("@")[0]
            return f"{code} {'4.3.0 try again later' if code[0] == '4' else '5.1.1 no such user'}"
        envelope.rcpt_tos.append(address)
        session.step = step
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        step = getattr(session, "step", "ok")
        if step.endswith("@DATA"):
            return f"{step.split('@')[0]} 4.3.0 temporary failure, try again later"
        if step in ("lost250", "ok"):
            message_id = next((line[11:].strip().decode() for line in envelope.content.split(b"\r\n")
                               if line[:11].lower() == b"message-id:"), "")
            with self.lock:
                self.kept.extend((rcpt, message_id) for rcpt in envelope.rcpt_tos)
        if step in ("drop", "lost250"):
            server.transport.close()  # the reply below is never written
        return "250 OK"

    def delivered(self) -> Counter:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.kept)


@pytest.fixture(params=["pipelining", "no pipelining"])
def flaky_smtp(app, monkeypatch, request):
    """Start a FlakySmtp server with the given scripts and point the app's outbox at it: one that
    offers PIPELINING (the commands of a message come together) and one that does not."""
    from devtools.mail_sink import Pipelining

    controllers = []

    def start(scripts: dict[str, list[str]]) -> FlakySmtp:
        handler = FlakySmtp(scripts)
        served = Pipelining(handler) if request.param == "pipelining" else handler
        controller = Controller(served, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        monkeypatch.setitem(app.config, "SMTP_PORT", controller.port)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


def drain_with_backoff(limit: int = 30) -> list[timedelta]:
    """Sweep, and when nothing is due move the clock to the next retry; return the clock jumps."""
    jumps = []
    for _ in range(limit):
        outbox.send_due()
        db.session.rollback()
        if not db.session.query(Delivery).filter(
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING])).count():
            return jumps
        next_due = outbox.next_due_at()  # None when the next row became due meanwhile: sweep again
        if next_due is not None:
            jumps.append(next_due - clock.now())
            clock.travel_to(next_due)
    raise AssertionError(f"still not drained after {limit} sweeps: {statuses()}")


def test_smtp_temporary_errors_and_drops_are_retried_with_backoff_until_delivered(
        app, client, login, make_host, make_service, make_slot, make_booking, flaky_smtp):
    scripts = {
        "refused421@example.com": ["421@RCPT", "ok"],
        "busy452@example.com": ["452@RCPT", "452@RCPT", "ok"],
        "later451@example.com": ["451@DATA", "451@DATA", "451@DATA", "ok"],
        "shutdown421@example.com": ["421@DATA", "ok"],
        # A dropped connection is retried once at once on a new connection (SmtpSender), so two
        # drops make one failed attempt.
        "dropped@example.com": ["drop", "drop", "ok"],
        "lost250@example.com": ["lost250", "ok"],  # the copy is re-sent at once: a duplicate
        # The 250 is lost and the quick re-send dropped: the row is retried a minute later and the
        # recipient gets the message twice, from two attempts, with one Message-ID.
        "lost250-retried@example.com": ["lost250", "drop", "ok"],
        "nobody@example.com": ["550@RCPT"],
    }
    smtp = flaky_smtp(scripts)
    host = make_host(email="teacher@example.com")
    service = make_service(host, title="英会話", venue="manual_url", capacity=10)  # no Zoom: confirmations
    slot = make_slot(service, starts_in=timedelta(days=5))
    bookings = {address: make_booking(slot, email=address) for address in scripts}
    started = clock.now()

    outbox.send_due()  # the first attempt of each confirmation
    db.session.rollback()
    login(host)
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert page.count("再試行中") == 6  # the host sees the retries (a first drop is re-sent at once)

    jumps = drain_with_backoff()
    rows = {d.to_email: d for d in db.session.query(Delivery).filter_by(kind="booking_confirmation")}
    # The guests' confirmations (the host's notices are other emails: a burst straddling their
    # gathering window makes two, which is not a duplicate).
    delivered = Counter({address: count for address, count in smtp.delivered().items() if address in scripts})
    attempts_per_address = Counter(address for address, _, _ in smtp.log)
    figures("smtp", clock_minutes_to_drain=round((clock.now() - started).total_seconds() / 60, 1),
            backoff_jumps_min=[round(j.total_seconds() / 60, 1) for j in jumps if j >= timedelta(seconds=1)],
            outbox_attempts={a.split("@")[0]: rows[a].attempts for a in scripts},
            smtp_transactions={a.split("@")[0]: attempts_per_address[a] for a in scripts},
            duplicates=sum(c - 1 for c in delivered.values()))
    for address in scripts:
        if address == "nobody@example.com":
            continue
        assert rows[address].status == DeliveryStatus.SENT, (address, rows[address].last_error)
        assert delivered[address] >= 1  # 0 lost
    duplicated = {a for a, c in delivered.items() if c > 1}
    assert duplicated == {"lost250@example.com", "lost250-retried@example.com"}  # the only possible ones
    assert not [kept for kept, count in Counter(smtp.kept).items() if count > 1 and kept[0] not in scripts]
    for address in duplicated:  # one Message-ID: the receiving side sees one message twice
        assert len({mid for rcpt, mid in smtp.kept if rcpt == address}) == 1, address
    assert rows["lost250-retried@example.com"].attempts == 2
    assert rows["later451@example.com"].attempts == 4 and rows["busy452@example.com"].attempts == 3
    # Backoff: the retries of one row are 1, 2, 4 minutes apart (never sooner).
    times = [at for address, _, at in smtp.log if address == "later451@example.com"]
    gaps = [round((b - a).total_seconds() / 60) for a, b in zip(times, times[1:])]
    assert gaps == [1, 2, 4], gaps

    # The permanent refusal: failed at once, never retried, shown to staff and to the host.
    rejected = rows["nobody@example.com"]
    assert rejected.status == DeliveryStatus.FAILED and rejected.attempts == 1 and "550" in rejected.last_error
    assert attempts_per_address["nobody@example.com"] == 1
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    row = page[page.index(f'id="booking-{bookings["nobody@example.com"].id}"'):]
    row = row[: row.index("</tr>")]
    assert "送信失敗" in row and "受け取りを拒否しました" in row and "550" not in row  # the SMTP words: staff's
    assert page.count("送信失敗") == 1 and page.count("再試行中") == 0
    client.post("/logout", form_url="/dashboard")
    staff = make_host(email="ops@example.com", name="運営", is_staff=True)
    login(staff)
    page = client.get("/staff/deliveries?status=FAILED").get_data(as_text=True)
    [row] = [tr for tr in page.split("<tr>") if "nobody@example.com" in tr]
    assert "送信失敗" in row and "550" in row and "5.1.1 no such user" in row and "再送" in row
    assert "refused421@example.com" not in page  # delivered after retries: not among the failures


# --- 4. Zoom faults: no booking is silently left without a URL ------------------------------------

ZOOM_FAULTS = ("429_per_second", "429_daily", "500", "503", "timeout", "xml", "401_124")
#: The per-second 429's ``Retry-After`` (seconds): none of RQ's own back-off intervals.
RETRY_AFTER = 5
#: The daily-limit case starts at 01:30 on 5 March in Tokyo (16:30 UTC on the 4th): Zoom's
#: budget comes back at 09:00 JST that morning.
DAILY_LIMIT_HIT_AT = datetime(2031, 3, 4, 16, 30, tzinfo=timezone.utc)
ZOOM_CLIENT_TIMEOUT = 1.0  # seconds (production: 10); the emulator's ``timeout`` fault sleeps longer
ZOOM_FAULT_SLEEP = 1.5


@pytest.fixture
def zoom_driver(app, zoom, monkeypatch):
    """Moves the app's clock and the emulator's together, and runs what would run meanwhile:
    RQ's scheduled retries whose time has come, the queued jobs, and the outbox sweep."""
    from app.meetings import planning, timing
    from app.zoom import link

    real_api_for = link.api_for

    def api_for(connection_id):
        api = real_api_for(connection_id)
        api.timeout = ZOOM_CLIENT_TIMEOUT
        return api

    monkeypatch.setattr(link, "api_for", api_for)

    class Driver(JobDriver):
        def through_url_time(self, slot) -> None:
            """The slot's pre-flight, then its URL-email moment, with what runs after each."""
            self.travel_to(slot.starts_at - timing.PREFLIGHT_LEAD)
            planning.run_preflights()
            self.pump(rounds=30)
            self.travel_to(slot.starts_at - timing.URL_LEAD)
            self.pump(rounds=30)

    # tokens, Retry-After and daily budgets on the same clock
    yield Driver(app, on_travel=zoom.set_clock)
    zoom.set_clock(None)  # the emulator is shared by the session


def zoom_outcomes(smtp, title: str, bookings, host) -> dict:
    """Per guest: ``url``, ``fallback`` (told it is being prepared, the URL email waiting), ``both`` or ``nothing``; and the host's alerts."""
    outcome = {}
    for booking in bookings:
        texts = {m["Subject"]: m.get_body(preferencelist=("plain",)).get_content()
                 for m in smtp.to(booking.guest_email)}
        url = f"【参加URLのご案内】{title}" in texts
        fallback = "自動でお送りします" in texts.get(f"【参加URLの準備中】{title}", "")
        outcome[booking.guest_email] = ("both" if url and fallback else "url" if url else
                                        "fallback" if fallback else "nothing")
    wanted = (f"【要対応】ZoomのURLを用意できませんでした（{title}）", "【要対応】Zoom連携の再設定をお願いします")
    alerts = [m["Subject"] for m in smtp.to(host.email) if m["Subject"] in wanted]
    return {"guests": outcome, "alerts": alerts}


def assert_nobody_silently_without_url(client, zoom, smtp, title, bookings, host, case) -> dict:
    from app.meetings import issuing

    result = zoom_outcomes(smtp, title, bookings, host)
    db.session.rollback()
    urls = {d.to_email: d for d in db.session.query(Delivery).filter_by(kind="meeting_url")}
    meeting = issuing.meeting_for(bookings[0].slot_id)
    live = [m for m in zoom.meetings() if not m["deleted"] and meeting and meeting.issue_key
            and f"[ref:{meeting.issue_key}]" in (m.get("agenda") or "")]
    calls = [(c["method"], c["path"], c["status"], c.get("timestamp")) for c in zoom.calls("/v2/")]
    assert len(live) <= 1, f"{case}: {len(live)} meetings on Zoom for one slot: {calls}"
    for booking in bookings:
        got = result["guests"][booking.guest_email]
        assert got in ("url", "fallback"), f"{case}: {booking.guest_email} got {got}"
        row = urls[booking.guest_email]
        # Sent, or told it is coming and still waiting for its meeting (never "sent" without a URL).
        assert (row.status, row.last_error.startswith("waiting:")) == (
            (DeliveryStatus.SENT, False) if got == "url" else (DeliveryStatus.PENDING, True)), (case, row.last_error)
        if got == "url":  # the link in the email leads to the slot's meeting, which exists on Zoom
            location = client.get(f"/j/{booking.join_token}/go").headers["Location"]
            assert location == meeting.join_url and [m for m in live if m["id"] == int(meeting.external_id)], \
                f"{case}: the URL sent leads nowhere"
        else:
            assert result["alerts"], f"{case}: {booking.guest_email} was told the host sends the URL; host not alerted"
    return result


def book_two_guests_of_a_linked_host(make_host, link_zoom, make_service, make_slot, make_booking, title):
    host = make_host(name="山田 花子")
    link_zoom(host)
    slot = make_slot(make_service(host, title=title, capacity=5), starts_in=timedelta(days=3))
    return host, slot, [make_booking(slot, email=f"guest{i}.{slot.id}@example.com") for i in (1, 2)]


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", ZOOM_FAULTS)
def test_zoom_fault_never_leaves_a_booking_silently_without_url(
        kind, persistent, client, zoom, zoom_driver, make_host, link_zoom, make_service, make_slot, make_booking,
        smtp):
    from app.meetings import issuing

    title = f"障害{kind}"
    # The fault hits the call with a side effect: the meeting create (POST /users/me/meetings).
    options = {"timeout": {"seconds": ZOOM_FAULT_SLEEP}, "429_per_second": {"retry_after": RETRY_AFTER}}.get(kind, {})
    zoom.inject_fault(kind, path="^/v2/users/me/meetings$", method="POST", times=None if persistent else 1,
                      **options)
    if kind == "timeout":
        zoom_driver.settle = ZOOM_FAULT_SLEEP - ZOOM_CLIENT_TIMEOUT + 0.5  # Zoom creates it after the client gave up
    if kind == "429_daily":
        zoom_driver.travel_to(DAILY_LIMIT_HIT_AT)
    host, slot, bookings = book_two_guests_of_a_linked_host(make_host, link_zoom, make_service, make_slot,
                                                            make_booking, title)
    zoom_driver.pump()  # the issue job and its retries
    zoom_driver.through_url_time(slot)
    case = f"{kind}-{'persistent' if persistent else 'once'}"
    result = assert_nobody_silently_without_url(client, zoom, smtp, title, bookings, host, case)
    creates = zoom.calls("/v2/users/me/meetings", method="POST")
    figures(f"zoom {case}", guests=sorted(result["guests"].values()), host_alerts=len(result["alerts"]),
            creates=len(creates), created=len([c for c in creates if c["status"] == 201]),
            meeting=issuing.meeting_for(slot.id).status.value)
    if not persistent:  # one fault, then Zoom answers: everyone gets the URL
        assert set(result["guests"].values()) == {"url"}, case
    # The retry comes when Zoom said: Retry-After seconds after the 429, or 09:00 JST (+1 min) for the day's budget.
    retries = [at for function, at in zoom_driver.released if function == "app.jobs.issue_meeting"]
    if kind == "429_per_second":
        refused = next(c for c in creates if c["status"] == 429)["timestamp"]  # whole seconds, as RQ keeps them
        since = retries[0] - datetime.fromisoformat(refused.replace("Z", "+00:00")).timestamp()
        assert RETRY_AFTER - 1 <= since <= RETRY_AFTER + 1, (case, since)
    if kind == "429_daily":
        assert retries[0] == datetime(2031, 3, 5, 9, 1, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp(), case
    assert len(result["alerts"]) <= 1, f"{case}: the host was alerted {len(result['alerts'])} times for one slot"
    if "fallback" in result["guests"].values():  # no URL: the meeting says why (and is retried, or given up)
        meeting = issuing.meeting_for(slot.id)
        assert meeting.failure is not None and meeting.status.value in ("failed", "issuing"), case


@pytest.mark.parametrize("when", ["before_issue", "after_issue"])
def test_dead_refresh_token_never_leaves_a_booking_silently_without_url(
        when, app, client, zoom, zoom_driver, make_host, link_zoom, make_service, make_slot, make_booking, smtp):
    from app import crypto
    from app.meetings import issuing
    from app.zoom import link
    from app.zoom.client import ZoomOAuth

    def rotate_behind_our_back():  # as if Zoom revoked the grant: the stored refresh token is dead
        db.session.rollback()
        conn = link.connection_for(host.id)
        ZoomOAuth(zoom.url, zoom.client_id, zoom.client_secret).refresh(crypto.decrypt(conn.refresh_token_enc))
        conn.access_expires_at = clock.now() - timedelta(minutes=1)  # the next call must refresh
        db.session.commit()

    title = f"失効{when}"
    host = make_host(name="山田 花子")
    link_zoom(host)
    slot = make_slot(make_service(host, title=title, capacity=5), starts_in=timedelta(days=3))
    if when == "before_issue":
        rotate_behind_our_back()
    bookings = [make_booking(slot, email=f"guest{i}.{slot.id}@example.com") for i in (1, 2)]
    zoom_driver.pump()
    if when == "after_issue":
        assert issuing.meeting_for(slot.id).status.value == "issued"
        rotate_behind_our_back()
    zoom_driver.through_url_time(slot)
    case = f"invalid_grant-{when}"
    result = assert_nobody_silently_without_url(client, zoom, smtp, title, bookings, host, case)
    figures(f"zoom {case}", guests=sorted(result["guests"].values()), host_alerts=result["alerts"])
    # Told to relink, and once that this slot has no URL.
    assert sorted(result["alerts"]) == sorted(["【要対応】Zoom連携の再設定をお願いします",
                                               f"【要対応】ZoomのURLを用意できませんでした（{title}）"])


# --- 5. Clock edges: the −24 h boundary, midnight in Tokyo, a host outside Japan ---------------------

def subjects_to(smtp, address: str) -> list[str]:
    return [m["Subject"] for m in smtp.to(address)]


def test_booking_at_exactly_24h_before_gets_the_url_at_once_and_a_second_earlier_at_the_mark(
        zoom, link_zoom, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    import worker
    from app.meetings.timing import URL_LEAD

    host = make_host()
    link_zoom(host)
    service = make_service(host, title="境界レッスン")
    at_mark = make_slot(service, starts_in=timedelta(days=2))
    clock.travel_to(at_mark.starts_at - URL_LEAD)
    first = make_booking(at_mark, email="exactly@example.com")
    run_jobs()  # the jobs enqueued by the booking itself: no sweep, no clock move
    assert "【参加URLのご案内】境界レッスン" in subjects_to(smtp, first.guest_email)
    url_row = db.session.query(Delivery).filter_by(kind="meeting_url", booking_id=first.id).one()
    at_once = (url_row.sent_at - (at_mark.starts_at - URL_LEAD)).total_seconds()

    early = make_slot(service, starts_in=timedelta(days=2))  # from the moved clock: 24 h after the first
    clock.travel_to(early.starts_at - URL_LEAD - timedelta(seconds=1))
    second = make_booking(early, email="one-second-early@example.com")
    run_jobs()
    assert "【参加URLのご案内】境界レッスン" not in subjects_to(smtp, second.guest_email)
    row = db.session.query(Delivery).filter_by(kind="meeting_url", booking_id=second.id).one()
    assert row.due_at == early.starts_at - URL_LEAD  # due at the mark, not at once
    clock.advance(timedelta(seconds=1))
    assert worker.enqueue_sweeps_if_due() == 1  # the scheduler, which wakes up at the due time
    run_jobs()
    assert "【参加URLのご案内】境界レッスン" in subjects_to(smtp, second.guest_email)
    figures("clock -24h", booked_at_mark_sent_after_s=f"{at_once:.2f}")


def test_a_slot_just_after_midnight_in_tokyo_keeps_its_japanese_date_everywhere(
        client, login, zoom, link_zoom, make_host, make_service, run_jobs, smtp):
    from app.models import Slot
    from app.meetings.timing import URL_LEAD

    host = make_host(name="山田 花子")
    link_zoom(host)  # logged in as the host
    service = make_service(host, title="深夜ラジオ体操", duration_minutes=60)
    client.post(f"/services/{service.id}", {"starts_at": "2030-06-20T00:30"})
    client.post(f"/services/{service.id}", {"starts_at": "2030-06-19T23:30"})  # ends after midnight
    db.session.rollback()
    after, before = sorted(db.session.query(Slot).filter_by(service_id=service.id), key=lambda s: s.starts_at,
                           reverse=True)
    assert after.starts_at.isoformat() == "2030-06-19T15:30:00+00:00"  # the UTC date is the day before
    assert before.starts_at.isoformat() == "2030-06-19T14:30:00+00:00"
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "2030年6月20日(木) 00:30" in dashboard and "2030年6月19日(水) 23:30" in dashboard
    client.post("/logout", form_url="/dashboard")

    for slot, email in ((after, "midnight@example.com"), (before, "late@example.com")):
        response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "夜 更子",
                                                           "guest_email": email, "confirm": "1"})
        assert response.status_code == 302
        booked = client.get(response.headers["Location"]).get_data(as_text=True)
        assert clock.format_datetime_local(slot.starts_at) in booked
    run_jobs()
    [body] = [m.get_body(preferencelist=("plain",)).get_content() for m in smtp.to("midnight@example.com")]
    assert "2030年6月20日(木) 00:30〜01:30" in body
    [body] = [m.get_body(preferencelist=("plain",)).get_content() for m in smtp.to("late@example.com")]
    assert "2030年6月19日(水) 23:30〜翌00:30" in body  # the end is on the next day, and says so
    create = [c for c in zoom.calls("/v2/users/me/meetings", method="POST")
              if c["json"]["start_time"] == "2030-06-19T15:30:00Z"]
    assert create and create[0]["json"]["timezone"] == "Asia/Tokyo"

    # The URL email goes out at 2030-06-19 00:30 JST (2030-06-18 15:30 UTC), with the JST date.
    row = db.session.query(Delivery).filter_by(kind="meeting_url", to_email="midnight@example.com").one()
    assert row.due_at.isoformat() == "2030-06-18T15:30:00+00:00"
    clock.travel_to(after.starts_at - URL_LEAD)
    while outbox.send_due():
        pass
    [url_mail] = [m for m in smtp.to("midnight@example.com") if "参加URLのご案内" in m["Subject"]]
    assert "2030年6月20日(木) 00:30〜01:30" in url_mail.get_body(preferencelist=("plain",)).get_content()
    [ics] = [part for part in url_mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    calendar = ics.get_content()
    calendar = calendar.decode() if isinstance(calendar, bytes) else calendar
    assert "DTSTART:20300619T153000Z" in calendar  # UTC in the calendar file: right in every time zone
    for _ in range(3):  # the host notices tell what became of the guests' emails (each waits for them)
        clock.advance(timedelta(minutes=1))
        outbox.send_due()
    # One notice per date, each with its Japanese date. (The 23:30 one fell due an hour before the
    # moment this test jumps to, so it may already tell its guest's email as still on its way.)
    notices = [m.get_body(preferencelist=("plain",)).get_content() for m in smtp.to(host.email)
               if "ZoomのURL" in m["Subject"]]
    assert len(notices) == 2
    assert any("2030年6月20日(木) 00:30〜01:30" in body for body in notices)
    assert any("2030年6月19日(水) 23:30〜翌00:30" in body for body in notices)


def test_a_host_in_los_angeles_sees_and_sends_los_angeles_time(
        client, login, zoom, link_zoom, make_host, make_service, run_jobs, smtp):
    from app.models import Slot

    host = make_host(name="Ana Smith")
    host.timezone = "America/Los_Angeles"
    db.session.commit()
    link_zoom(host)
    service = make_service(host, title="Morning English", duration_minutes=60)
    client.post(f"/services/{service.id}", {"starts_at": "2030-06-20T09:00"})  # PDT, UTC−7
    client.post(f"/services/{service.id}", {"starts_at": "2030-12-20T09:00"})  # PST, UTC−8
    db.session.rollback()
    summer, winter = sorted(db.session.query(Slot).filter_by(service_id=service.id), key=lambda s: s.starts_at)
    assert summer.starts_at.isoformat() == "2030-06-20T16:00:00+00:00"  # = 2030-06-21 01:00 in Tokyo
    assert winter.starts_at.isoformat() == "2030-12-20T17:00:00+00:00"
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "2030年6月20日(木) 09:00" in dashboard and "2030年12月20日(金) 09:00" in dashboard
    assert "2030年6月21日" not in dashboard  # never the Tokyo date
    client.post("/logout", form_url="/dashboard")

    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert "開催日時（ロサンゼルス時間）" in page  # the guest page names the host's zone in words
    assert "2030年6月20日(木) 09:00" in page
    response = client.post(f"/s/{service.public_id}", {"slot_id": summer.id, "guest_name": "佐藤 一郎",
                                                       "guest_email": "ichiro@example.com", "confirm": "1"})
    booked = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2030年6月20日(木) 09:00" in booked
    run_jobs()
    [confirmation] = smtp.to("ichiro@example.com")
    text = confirmation.get_body(preferencelist=("plain",)).get_content()
    assert "2030年6月20日(木) 09:00〜10:00" in text
    [create] = zoom.calls("/v2/users/me/meetings", method="POST")
    assert create["json"]["start_time"] == "2030-06-20T16:00:00Z"
    assert create["json"]["timezone"] == "America/Los_Angeles"
    # Outside Tokyo every guest-facing time names its zone in words and adds Japan time, or a guest
    # in Japan would misread it.
    la, japan = "ロサンゼルス時間 2030年6月20日(木) 09:00〜10:00", "（日本時間 2030年6月21日(金) 01:00〜02:00）"
    assert la + japan in text
    assert la in booked and japan in booked  # on a line of its own on the page
    assert "America/Los_Angeles" not in booked + text
