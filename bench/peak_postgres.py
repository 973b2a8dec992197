"""The top-of-the-hour peak on PostgreSQL: the URL emails of every lesson starting on the hour, due in one minute.

    .venv/bin/python bench/peak_postgres.py                          # 5,000 lessons × 10 guests, 4 workers
    .venv/bin/python bench/peak_postgres.py --slots 1000 --no-kill   # smaller, without the SIGKILL run

Everything is real and started here: a throwaway PostgreSQL cluster (as the tests start one:
``tests/postgres.py``), Redis, the Zoom emulator (each URL email checks its lesson's meeting on
Zoom once per batch, as in production), the product's SMTP sink (``devtools.mail_sink``, its own
process) and ``python worker.py`` × ``--workers`` plus ``python worker.py scheduler``. It seeds
``--hosts`` hosts linked to Zoom through the OAuth token exchange, ``--slots`` lessons with
``--guests`` guests each and a meeting issued on Zoom through the product's own ``issue_meeting``,
and one ``meeting_url`` outbox row per guest. Then, in each run, every row falls due within
``--spread`` seconds (a lesson's guests at the same second) and the workers send them with no
help from this script. It prints, per run:

- the time from the first due moment to the last arrival, against 1.25 × N ÷ the raw rate of a
  loop sending one ready message through the workers' SMTP client over as many connections as
  they may open together (their ``MAIL_SMTP_RELAY_CONNECTIONS``), to the same sink, measured
  before and after the peak, each time once the machine is quiet;
- how much of the peak the sink ran, and waited for a CPU (it shares the two cores with the rest);
- lateness p50/p95/max; rows lost, duplicated, and each duplicate's Message-IDs;
- lock waits: backends seen waiting on a lock (``pg_stat_activity`` every 0.1 s) and PostgreSQL's
  own ``log_lock_waits`` lines (waits over ``deadlock_timeout``, set to 20 ms here);
- the RSS of every worker process (and the largest of its work horses) at the start and the end.

The second run SIGKILLs one worker and its work horse once ``--kill-at`` of the emails arrived:
the rows it had claimed come back after ``MAIL_CLAIM_TIMEOUT`` (``--claim-timeout``), and the
messages it had handed to its SMTP lanes without marking them (at most two per lane) may arrive
twice, with the same Message-ID.
"""
import argparse
import base64
import email.parser
import hashlib
import math
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import app` from anywhere
sys.path.insert(0, str(ROOT / "bench"))  # the shared helpers of outbox_delivery.py

import psycopg  # noqa: E402
import requests  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402
from sqlalchemy import func, insert, select, text, update  # noqa: E402

from app import clock, create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.mail import outbox  # noqa: E402
from app.mail.smtp import PipeliningSMTP, wire_bytes  # noqa: E402
from app.mail.render import build_message, render_delivery  # noqa: E402
from app.meetings.issuing import issue_meeting  # noqa: E402
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Service, Slot, SlotStatus, User  # noqa: E402
from app.services.catalog import create_service  # noqa: E402
from app.zoom.link import complete_link, redirect_uri  # noqa: E402
from config import Config  # noqa: E402
from devtools.zoom_emulator.server import EmulatorServer  # noqa: E402
from outbox_delivery import (MaildirSink, Processes, children, cpu_per_mail, cpu_seconds, free_port,  # noqa: E402
                             percentile, run_and_report, spent_cpu, start_redis, wait_for)
from tests.postgres import Cluster  # noqa: E402

#: The issue's target: the peak sent within 1.25 × N ÷ the raw rate through the same connections.
TARGET_FACTOR = 1.25


# --- the Zoom emulator, in its own process as `make run` starts it -----------------------------------

class EmulatorProcess(EmulatorServer):
    """``python -m devtools.zoom_emulator`` in a subprocess, driven through the same control API as
    the in-thread one (in this process its threads would wait for the GIL behind the benchmark's)."""

    def __init__(self, procs: Processes):
        super().__init__()  # an app object only for the defaults it reports (client id and secret)
        self.port = free_port()
        procs.start("zoom", [sys.executable, "-m", "devtools.zoom_emulator", "--port", str(self.port)])
        wait_for(lambda: _answers(f"{self.url}/_emulator/config"), 20, "Zoom emulator", procs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        pass  # a subprocess: stopped with the others


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


# --- seeding ---------------------------------------------------------------------------------------

def link_zoom(zoom: EmulatorServer, host: User, zoom_email: str) -> None:
    """Link ``host`` to a new emulator user through the OAuth code exchange (PKCE), as the callback does."""
    zoom.add_user(zoom_email, type=2)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = zoom.authorize_code_for(zoom_email, redirect_uri=redirect_uri(), state="bench", code_challenge=challenge)
    answer = requests.post(f"{zoom.url}/oauth/token", auth=(zoom.client_id, zoom.client_secret), timeout=10,
                           data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(),
                                 "code_verifier": verifier})
    answer.raise_for_status()
    complete_link(host, answer.json())
    db.session.commit()


def seed(zoom: EmulatorServer, hosts: int, slots: int, guests: int) -> int:
    """Hosts linked to Zoom, one online service each, ``slots`` lessons of ``guests`` guests with a
    meeting issued on Zoom, and one pending ``meeting_url`` row per guest (due far ahead); returns N."""
    now = clock.now().replace(microsecond=0)
    db.session.execute(insert(User), [
        {"email": f"host{i}@bench.test", "password_hash": "bench-not-a-hash", "display_name": f"講師 {i}",
         "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "created_at": now - timedelta(days=30)}
        for i in range(hosts)])
    db.session.commit()
    services = []
    for i, host in enumerate(db.session.scalars(select(User).order_by(User.id)).all()):
        link_zoom(zoom, host, f"host{i}@zoom.test")
        services.append(create_service(host, kind="online", title=f"オンライン英会話 {i}", description="",
                                       duration_minutes=60, capacity=guests, venue="zoom",
                                       host_notes="開始5分前にお入りください。"))
        db.session.commit()
    booked_at = clock.now()
    starts = now.replace(minute=0, second=0) + timedelta(days=2)
    db.session.execute(insert(Slot), [
        {"service_id": services[k % hosts].id, "starts_at": starts + timedelta(hours=k // hosts),
         "capacity": guests, "booked_count": guests, "status": SlotStatus.OPEN, "created_at": now,
         "first_booked_at": booked_at} for k in range(slots)])
    slot_ids = db.session.scalars(select(Slot.id).order_by(Slot.id)).all()
    db.session.execute(insert(Booking), [
        {"slot_id": slot_id, "guest_name": f"受講者 {k * guests + g}", "guest_email": f"g{k * guests + g}@guest.test",
         "mailbox": f"g{k * guests + g}@guest.test", "status": BookingStatus.CONFIRMED,
         "cancel_token": secrets.token_urlsafe(24), "join_token": secrets.token_urlsafe(24), "created_at": booked_at}
        for k, slot_id in enumerate(slot_ids) for g in range(guests)])
    db.session.commit()
    for done, slot_id in enumerate(slot_ids, 1):
        issue_meeting(slot_id)
        if done % 1000 == 0:
            print(f"  {done} meetings issued on Zoom", flush=True)
    db.session.rollback()
    # Whatever the seeding itself queued (host notices …) is not part of the peak.
    db.session.execute(update(Delivery).where(Delivery.status == DeliveryStatus.PENDING)
                       .values(status=DeliveryStatus.CANCELLED))
    rows = db.session.execute(select(Booking.id, Booking.slot_id, Booking.guest_email, Booking.guest_name,
                                     Service.host_id).join(Slot, Slot.id == Booking.slot_id)
                              .join(Service, Service.id == Slot.service_id)).all()
    far = now + timedelta(days=30)
    # Written in the order guests booked (over weeks, every lesson's guests mixed), not lesson by lesson.
    random.Random(0).shuffle(rows)
    db.session.execute(insert(Delivery), [
        {"kind": "meeting_url", "to_email": email_address, "to_name": name, "locale": "ja", "host_id": host_id,
         "booking_id": booking_id, "slot_id": slot_id, "payload": {}, "status": DeliveryStatus.PENDING,
         "due_at": far, "created_at": booked_at, "dedupe_key": f"meeting_url:{booking_id}", "attempts": 0,
         "last_error": ""} for booking_id, slot_id, email_address, name, host_id in rows])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":  # a live database has its statistics (autovacuum)
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return len(rows)


def sample_message() -> bytes:
    """One real URL email, rendered as the workers render it (for the raw loop)."""
    delivery = db.session.scalars(select(Delivery).where(Delivery.kind == "meeting_url").limit(1)).one()
    db.session.expunge(delivery)
    message = build_message(delivery, render_delivery(delivery))
    db.session.rollback()
    return wire_bytes(message)


def fall_due(due: float, spread: int) -> None:
    """Every URL row pending again, due within ``spread`` s of ``due`` (a lesson's guests at the same second)."""
    db.session.execute(text(
        "UPDATE deliveries SET status = 'PENDING', attempts = 0, claim_token = NULL, claimed_at = NULL, "
        "sent_at = NULL, message_id = NULL, last_error = '', "
        "due_at = to_timestamp(:due) + make_interval(secs => slot_id % :spread) "
        "WHERE kind = 'meeting_url'"), {"due": due, "spread": spread})
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE deliveries")


# --- watching a run ----------------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Watch:
    """Samples lock waits (every 0.1 s) and the workers' RSS (every second) in a thread of its own."""

    def __init__(self, dsn: str, workers: dict[str, int]):
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.workers = workers
        self.samples = 0
        self.waiting = 0  # samples with a backend waiting on a lock
        self.most_waiting = 0
        self.rss: dict[str, list[int]] = {name: [] for name in workers}
        self.horse_rss: dict[str, int] = {name: 0 for name in workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.1):
            waiting = self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                        ).fetchone()[0]
            self.samples += 1
            self.waiting += bool(waiting)
            self.most_waiting = max(self.most_waiting, waiting)
            tick += 1
            if tick % 10 == 0:
                for name, pid in self.workers.items():
                    if rss_kib(pid):
                        self.rss[name].append(rss_kib(pid))
                        for horse in children(pid):
                            self.horse_rss[name] = max(self.horse_rss[name], rss_kib(horse))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


#: How often the sink's folder is read, in the raw loop and in the peak alike: reading and removing
#: its files beside the sink costs the sink CPU (bench/README.md, "Tenth session"), and an
#: arrival's time is its file's, whenever it is read.
LOOK_EVERY = 1.0


def arrivals(new: Path) -> list[tuple[float, str, str]]:
    """Every message in the sink's Maildir: (arrival, recipient, Message-ID); the files are removed."""
    parser = email.parser.BytesHeaderParser()
    found = []
    for entry in os.scandir(new):
        with open(entry.path, "rb") as fp:
            headers = parser.parse(fp)
        found.append((entry.stat().st_mtime, headers["X-RcptTo"], headers["Message-ID"]))
        os.unlink(entry.path)
    return found


def scheduled(pid: int) -> tuple[float, float]:
    """Seconds ``pid``'s threads ran on a CPU and waited in the run queue for one (``schedstat``):
    the sink answers every message from one thread, so its waiting is the peak's waiting."""
    ran = waited = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        fields = stat.read_text().split()
        ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran / 1e9, waited / 1e9


def lanes_of(log: Path) -> int:
    """The most SMTP lanes the worker writing ``log`` opened (``MAIL_SMTP_CONNECTIONS`` if it never grew)."""
    most = Config.MAIL_SMTP_CONNECTIONS
    for line in log.read_text(errors="replace").splitlines():
        if "SMTP lanes:" in line:
            most = max(most, int(line.rsplit("→", 1)[1].split()[0]))
    return most


def postgres_cpu(cluster: Cluster) -> float:
    """CPU seconds of the cluster's postmaster and every backend (they run on the same two cores)."""
    try:
        return cpu_seconds(int(Path(cluster.data, "postmaster.pid").read_text().split()[0]))
    except OSError:
        return 0.0


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine so far (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait


def quiet_box(most_busy: float = 0.1, patience: float = 90.0) -> tuple[float, float]:
    """Wait until the machine's cores were at most ``most_busy`` busy for a second (PostgreSQL's
    checkpoint and autovacuum after the seeding or a peak, the workers' warm-up): a raw loop
    measured beside them would measure them too. Returns (seconds waited, the last second's
    busy share), which the benchmark prints."""
    started = time.monotonic()
    while True:
        idle, total = _cpu_times()
        time.sleep(1)
        idle2, total2 = _cpu_times()
        busy = 1 - (idle2 - idle) / max(1, total2 - total)
        if busy <= most_busy or time.monotonic() - started > patience:
            return time.monotonic() - started, busy


def lock_wait_lines(cluster: Cluster) -> int:
    """PostgreSQL's ``log_lock_waits`` lines so far (a wait over ``deadlock_timeout``)."""
    try:
        return Path(cluster.dir, "log").read_text(errors="replace").count("still waiting for")
    except OSError:
        return 0


def run_peak(app, procs: Processes, cluster: Cluster, sink: MaildirSink, workers: dict[str, object], n: int,
             args, kill: bool) -> dict:
    """One peak: all rows due within ``--spread`` s, then wait for every email (and a duplicate's time)."""
    lead = 5.0
    due = time.time() + lead
    with app.app_context():
        fall_due(due, args.spread)
    waits_before = lock_wait_lines(cluster)
    cpu_before = {**procs.cpu(), "postgres": postgres_cpu(cluster)}
    sink_before, started = scheduled(procs.pid("smtp-sink")), time.time()
    watch = Watch(cluster.url.replace("postgresql+psycopg", "postgresql"), {name: proc.pid
                                                                              for name, proc in workers.items()})
    killed = None
    got = []  # arrivals read so far: taken out of the sink's folder as they come, so that it stays
    #           small (a folder of 50,000 files slows the sink and every look at it)
    try:
        def progress():
            nonlocal killed
            got.extend(arrivals(sink.new))
            count = len(got)
            if kill and killed is None and count >= args.kill_at * n:
                # A worker in the middle of a sweep: its work horse is the process that sends.
                busy = [(name, proc, children(proc.pid)) for name, proc in workers.items() if proc.poll() is None]
                busy = [entry for entry in busy if entry[2]]
                if not busy:
                    return False
                name, proc, horses = busy[0]
                for pid in [proc.pid, *horses]:
                    os.kill(pid, signal.SIGKILL)
                lanes = lanes_of(procs.logdir / f"{name}.log")
                killed = {"worker": name, "at": time.time() - due, "received": count, "horses": len(horses),
                          "lanes": lanes}
                print(f"  SIGKILLed {name} and {len(horses)} work horse(s) at {count} received "
                      f"({killed['at']:.1f} s after the due time; its lanes: {lanes})", flush=True)
            return count >= n

        timeout = args.timeout or max(300.0, 20 * n / 1000)
        timed_out = False
        try:
            wait_for(progress, lead + timeout, "the peak", interval=LOOK_EVERY)
        except TimeoutError:
            timed_out = True
        time.sleep(3)  # a duplicate would arrive right behind the last mail
    finally:
        watch.stop()
    cpu = spent_cpu(cpu_before, {**procs.cpu(), "postgres": postgres_cpu(cluster)})
    sink_ran = [(b - a) / (time.time() - started) for a, b in zip(sink_before, scheduled(procs.pid("smtp-sink")))]
    received = got + arrivals(sink.new)
    with app.app_context():
        statuses = {status.value: count for status, count in db.session.execute(
            select(Delivery.status, func.count()).where(Delivery.kind == "meeting_url").group_by(Delivery.status))}
        own_due = {address: clock.as_utc(due_at).timestamp() for address, due_at in db.session.execute(
            select(Delivery.to_email, Delivery.due_at).where(Delivery.kind == "meeting_url"))}
        db.session.rollback()
    own_lateness = [t - own_due[rcpt] for t, rcpt, _ in received if rcpt in own_due]
    per_rcpt = Counter(rcpt for _, rcpt, _ in received)
    ids: dict[str, set] = {}
    for _, rcpt, message_id in received:
        ids.setdefault(rcpt, set()).add(message_id)
    times = sorted(t for t, _, _ in received)
    lateness = [t - due for t in times]
    return {
        "n": n, "received": len(received), "distinct": len(per_rcpt), "statuses": statuses, "timed_out": timed_out,
        "duplicates": sum(c - 1 for c in per_rcpt.values()),
        "two_message_ids": sum(1 for found in ids.values() if len(found) > 1),
        "last": times[-1] - due if times else float("nan"), "first": times[0] - due if times else float("nan"),
        "p50": percentile(lateness, 50) if lateness else float("nan"),
        "p95": percentile(lateness, 95) if lateness else float("nan"),
        "own": [percentile(own_lateness, p) for p in (50, 95, 100)] if own_lateness else [float("nan")] * 3,
        "lock_samples": watch.samples, "lock_waiting": watch.waiting, "most_waiting": watch.most_waiting,
        "lock_log": lock_wait_lines(cluster) - waits_before,
        "rss": {name: (values[0], max(values), values[-1]) for name, values in watch.rss.items() if values},
        "horse_rss": watch.horse_rss, "killed": killed, "cpu": cpu, "sink": sink_ran,
        "lanes": {name: lanes_of(procs.logdir / f"{name}.log") for name in workers},
    }


# --- the raw loop over several connections -------------------------------------------------------------

def raw_lanes(port: int, n: int, message: bytes, connections: int, result) -> None:
    """Send ``message`` ``n`` times over ``connections`` connections at once (a thread each); put the start time.

    Through the workers' own SMTP client (pipelining when the sink offers it), so the raw rate
    gains what the client saves the sink, as the peak does."""
    sys.setswitchinterval(0.0005)  # as in a worker
    started = time.time()

    def lane(count: int, offset: int) -> None:
        with PipeliningSMTP("127.0.0.1", port, timeout=60) as conn:
            for i in range(count):
                conn.send_one("no-reply@booking.test", f"raw{offset + i}@bench.test", message)

    share = math.ceil(n / connections)
    threads = [threading.Thread(target=lane, args=(min(share, n - k * share), k * share))
               for k in range(connections) if n - k * share > 0]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.put(started)


def measure_raw(sink: MaildirSink, n: int, message: bytes, connections: int) -> float:
    """The raw rate (mails/s as the sink saw them) of ``raw_lanes`` in a spawned process, once the
    machine is quiet (``quiet_box``)."""
    waited, busy = quiet_box()
    print(f"raw loop: the machine was {busy:.0%} busy after {waited:.0f} s of waiting for it to be quiet", flush=True)
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    proc = ctx.Process(target=raw_lanes, args=(sink.port, n, message, connections, result), daemon=True)
    proc.start()
    got = []  # read as the peak reads them (``LOOK_EVERY``)
    try:
        wait_for(lambda: got.extend(arrivals(sink.new)) or not proc.is_alive(), 600, "raw loop", interval=LOOK_EVERY)
        started = result.get(timeout=30)
        proc.join(timeout=30)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    got += arrivals(sink.new)
    if len(got) != n:
        raise RuntimeError(f"raw loop: the sink received {len(got)} of {n} messages")
    return n / (max(t for t, _, _ in got) - started)


# --- the whole benchmark ---------------------------------------------------------------------------------

def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="peak-bench-"))
    procs = Processes(workdir)
    cluster = zoom = sink = None
    if args.relay_cpu is not None:
        # Every process started from here (PostgreSQL, Redis, the emulator, the workers, the raw
        # loop) inherits the other cores; the sink is moved to its own below.
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {args.relay_cpu})
    try:
        cluster = Cluster(free_port()).start()
        with psycopg.connect(cluster.url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET log_lock_waits = on")
            conn.execute("ALTER SYSTEM SET deadlock_timeout = '20ms'")
            conn.execute("SELECT pg_reload_conf()")
        redis_url = start_redis(procs, workdir)
        zoom = EmulatorProcess(procs)
        sink = MaildirSink(procs, workdir)
        if args.relay_cpu is not None:
            for thread in os.listdir(f"/proc/{procs.pid('smtp-sink')}/task"):
                os.sched_setaffinity(int(thread), {args.relay_cpu})
        env = dict(os.environ, DATABASE_URL=cluster.url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                   SMTP_PORT=str(sink.port), MAILBOX_DIR=str(workdir / "mailbox"), APP_BASE_URL="http://127.0.0.1:5000",
                   ZOOM_OAUTH_BASE_URL=zoom.url, ZOOM_API_BASE_URL=zoom.api_url, ZOOM_CLIENT_ID=zoom.client_id,
                   ZOOM_CLIENT_SECRET=zoom.client_secret, MAIL_CLAIM_TIMEOUT=str(args.claim_timeout),
                   PYTHONUNBUFFERED="1")
        env.pop("APP_ENV", None)
        app = create_app(Config, SQLALCHEMY_DATABASE_URI=cluster.url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                         SMTP_PORT=sink.port, APP_BASE_URL=env["APP_BASE_URL"], ZOOM_OAUTH_BASE_URL=zoom.url,
                         ZOOM_API_BASE_URL=zoom.api_url, ZOOM_CLIENT_ID=zoom.client_id,
                         ZOOM_CLIENT_SECRET=zoom.client_secret)
        started = time.monotonic()
        with app.app_context():
            upgrade()
            n = seed(zoom, args.hosts, args.slots, args.guests)
            message = sample_message()
        seeded = time.monotonic() - started
        print(f"seeded {n} URL emails for {args.slots} lessons in {seeded:.0f} s", flush=True)
        redis = Redis.from_url(redis_url)
        redis.flushdb()  # the send jobs the seeding queued: the peak starts from the rows alone

        workers = {f"worker{i + 1}": procs.start(f"worker{i + 1}", [sys.executable, "worker.py"], env)
                   for i in range(args.workers)}
        procs.start("scheduler", [sys.executable, "worker.py", "scheduler"], env)
        wait_for(lambda: Worker.count(connection=redis) >= args.workers, 60, "workers registered", procs)
        time.sleep(1)

        # The raw rate through the connections the workers may open together, before and after the
        # peak: on a shared box it moves between two minutes.
        config = app.config
        ceiling = args.workers * config["MAIL_SMTP_MAX_CONNECTIONS"]
        if config["MAIL_SMTP_RELAY_CONNECTIONS"]:
            ceiling = min(ceiling, config["MAIL_SMTP_RELAY_CONNECTIONS"])
        raw_before = measure_raw(sink, min(n, args.raw_n), message, ceiling)
        runs = {"peak": run_peak(app, procs, cluster, sink, workers, n, args, kill=False)}
        raw = measure_raw(sink, min(n, args.raw_n), message, ceiling)
        if args.kill:
            runs["peak, one worker SIGKILLed"] = run_peak(app, procs, cluster, sink, workers, n, args, kill=True)
        return {"n": n, "args": args, "seeded": seeded, "raw": raw, "runs": runs,
                "raw_before": raw_before, "ceiling": ceiling, "size": len(message), "logs": workdir}
    except BaseException:
        procs.print_tails()
        raise
    finally:
        procs.stop()
        if sink is not None:
            sink.close()
        if zoom is not None:
            zoom.stop()
        if cluster is not None:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict) -> None:
    """Print every run's figures with the issue's targets."""
    n, args = r["n"], r["args"]
    raws = {"before": r["raw_before"], "after": r["raw"]}
    print(f"\n{n} URL emails ({r['size']} B each) for {args.slots} lessons of {args.guests} guests, "
          f"{args.hosts} hosts, due within {args.spread} s; {args.workers} workers; PostgreSQL")
    print(f"raw rate, one ready message over {r['ceiling']} connections (as many as the workers may open together), "
          + ", ".join(f"{when} the peak: {rate:.0f} mails/s (target: last mail ≤ {TARGET_FACTOR * n / rate:.1f} s "
                      "after the first due moment)" for when, rate in raws.items()))
    for name, run in r["runs"].items():
        print(f"\n— {name}")
        rate = n / run["last"]
        print(f"  first due → last arrival {run['last']:.1f} s ({rate:.0f} mails/s); ratio to the raw rate "
              + ", ".join(f"{when} {rate / raw:.2f} ({'met' if rate / raw >= 1 / TARGET_FACTOR else 'NOT met'})"
                          for when, raw in raws.items()))
        print("  lateness after each email's own due time p50 / p95 / max: "
              + " / ".join(f"{value:.1f}" for value in run["own"]) + " s")
        print(f"  received {run['received']}, distinct recipients {run['distinct']} of {n}; duplicates "
              f"{run['duplicates']} (recipients with two Message-IDs: {run['two_message_ids']}); rows {run['statuses']}"
              + ("; TIMED OUT" if run["timed_out"] else ""))
        if run["killed"]:
            k = run["killed"]
            gathered = outbox._Marks.GATHER_ROWS  # accepted by the relay, not yet marked sent
            print(f"  killed {k['worker']} (+{k['horses']} work horse) {k['at']:.1f} s in, at {k['received']} "
                  f"received; in flight at most 2 × its {k['lanes']} lanes + {gathered} awaiting their mark = "
                  f"{2 * k['lanes'] + gathered}")
        print(f"  lock waits: {run['lock_waiting']} of {run['lock_samples']} samples had a backend waiting "
              f"(at most {run['most_waiting']} at once); log_lock_waits (> 20 ms): {run['lock_log']}")
        print("  worker RSS MiB start / max / end (largest work horse): " + ", ".join(
            f"{name} {a / 1024:.0f} / {b / 1024:.0f} / {c / 1024:.0f} ({run['horse_rss'][name] / 1024:.0f})"
            for name, (a, b, c) in run["rss"].items()))
        print(f"  most lanes per worker: {run['lanes']}")
        print(f"  CPU per mail (ms): {cpu_per_mail(run['cpu'], run['received'] or 1)}")
        print(f"  the sink (one thread) ran {run['sink'][0]:.0%} and waited for a CPU {run['sink'][1]:.0%} of the "
              "peak; the rest it had nothing to do")
        # Every process here shares this machine's cores, the sink standing in for a relay included:
        # their CPU per mail bounds the rate whatever the scheduling.
        per_mail = sum(run["cpu"].values()) / (run["received"] or 1)
        cores = os.cpu_count()
        print(f"  CPU per mail, every process: {1000 * per_mail:.2f} ms → at most {cores / per_mail:.0f} mails/s on "
              f"{cores} cores ({cores / per_mail / raws['before']:.2f} × the raw rate before); the peak reached "
              f"{rate * per_mail / cores:.0%} of that")
    print(f"\nseeding took {r['seeded']:.0f} s")
    if Path(r["logs"]).exists():
        print(f"logs kept in {r['logs']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=5000, help="lessons starting on the hour (default 5000)")
    parser.add_argument("--guests", type=int, default=10, help="guests per lesson (default 10)")
    parser.add_argument("--hosts", type=int, default=100, help="hosts, each linked to Zoom (default 100)")
    parser.add_argument("--workers", type=int, default=4, help="`python worker.py` processes (default 4)")
    parser.add_argument("--spread", type=int, default=60, help="the rows fall due within this many s (default 60)")
    parser.add_argument("--kill-at", type=float, default=0.4,
                        help="SIGKILL a worker once this share of the emails arrived (default 0.4)")
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="skip the run with a SIGKILL")
    parser.add_argument("--claim-timeout", type=int, default=30,
                        help="MAIL_CLAIM_TIMEOUT for the workers: a dead worker's claims come back after it (default 30)")
    parser.add_argument("--raw-n", type=int, default=10000, help="messages of the raw loop (default 10000)")
    parser.add_argument("--timeout", type=float, default=None, help="give up a run after this many s")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    parser.add_argument("--relay-cpu", type=int, default=None,
                        help="run the sink on this CPU alone and everything else on the others, as a relay runs "
                             "on its own machine (default: every process shares every core)")
    args = parser.parse_args(argv)
    run_and_report(run, report, args)


if __name__ == "__main__":
    main()
