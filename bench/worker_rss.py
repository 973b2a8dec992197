"""Worker memory over a long run: RSS of a real ``python worker.py`` across N outbox sends.

    .venv/bin/python bench/worker_rss.py                # 100,000 sends, RSS every 10,000
    .venv/bin/python bench/worker_rss.py --n 20000 --every 2000

It starts its own redis-server and an aiosmtpd sink that only counts (nothing is parsed or
stored), migrates a temporary SQLite database with the real migrations (or an empty database
given with ``--database-url``), and runs ``python worker.py`` and ``python worker.py scheduler``
as subprocesses configured through the environment, like the Procfile does. It then feeds the
outbox as the product does: rows written in transactions of ``--batch`` emails (alternately a
booking confirmation and a password reset, rendered from real rows), each transaction
enqueueing one ``send_deliveries`` job after its commit, with at most ``--in-flight`` emails
written but not yet received.

Every ``--every`` emails received it prints the RSS of the worker process (the one that
lives for the whole run) and the largest RSS of its work horses (RQ forks one per job) seen
since the previous line, then the growth from the first line to the last. It never asserts;
flat means the growth is noise (a few MiB), not proportional to the sends. It gives up when
nothing arrives for ``--stall`` s, and stops every subprocess on the way out, also on error
or Ctrl-C.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import app` from anywhere
sys.path.insert(0, str(ROOT / "bench"))  # the shared helpers of outbox_delivery.py

from aiosmtpd.controller import Controller  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app import clock, create_app, jobs  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, Service, ServiceKind, Slot,  # noqa: E402
                        SlotStatus, User, Venue)
from app.queue import enqueue_batch_after_commit  # noqa: E402
from config import Config  # noqa: E402
from outbox_delivery import Processes, children, free_port, run_and_report, start_redis, wait_for  # noqa: E402

MIB = 1024 * 1024


class CountingSink:
    """An aiosmtpd handler that counts messages and keeps nothing (the sink must not grow)."""

    def __init__(self):
        self.received = 0  # only the controller's event-loop thread writes it

    async def handle_DATA(self, server, session, envelope):
        self.received += 1
        return "250 OK"


# --- memory of processes ------------------------------------------------------------------------

def rss(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes (None once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# --- the data -----------------------------------------------------------------------------------

def seed(recipients: int) -> tuple[list[int], list[int]]:
    """``recipients`` accounts and as many confirmed bookings (one host, 10 services × 10 slots); their ids."""
    now = clock.now()
    db.session.execute(insert(User), [
        {"email": f"user{i}@bench.test", "password_hash": "bench-not-a-hash", "display_name": f"利用者 {i}",
         "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "created_at": now}
        for i in range(recipients)])
    host = User(email="host@bench.test", password_hash="bench-not-a-hash", display_name="ベンチ ホスト")
    db.session.add(host)
    db.session.flush()
    services = [Service(host=host, kind=ServiceKind.ONLINE, title=f"オンライン英会話 {i + 1}", description="",
                        duration_minutes=60, capacity=recipients, venue=Venue.MANUAL_URL,
                        host_notes="参加URL: https://meet.example.com/abc\n当日はよろしくお願いします。")
                for i in range(10)]
    slots = [Slot(service=s, starts_at=now + timedelta(days=3 + j, hours=i), capacity=recipients,
                  status=SlotStatus.OPEN) for i, s in enumerate(services) for j in range(10)]
    db.session.add_all(slots)
    db.session.flush()
    per_slot = -(-recipients // len(slots))
    db.session.execute(insert(Booking), [
        {"slot_id": slots[i // per_slot].id, "guest_name": f"予約者 {i + 1}", "guest_email": f"guest{i}@bench.test", "mailbox": f"guest{i}@bench.test",
         "status": BookingStatus.CONFIRMED, "cancel_token": f"bench-cancel-{i}", "join_token": f"bench-join-{i}",
         "created_at": now} for i in range(recipients)])
    for slot in slots:
        slot.booked_count = per_slot
    db.session.commit()
    users = db.session.scalars(select(User.id).where(User.email.like("user%@bench.test")).order_by(User.id)).all()
    bookings = db.session.execute(select(Booking.id, Booking.slot_id, Booking.guest_email, Booking.guest_name)
                                  .order_by(Booking.id)).all()
    return users, bookings


def write_batch(start: int, size: int, users: list[int], bookings: list, host_id: int) -> None:
    """``size`` due emails in one transaction; after its commit one send job carries their ids.

    Written in bulk (``queue_email`` would flush row by row), but with what ``queue_email``
    writes and enqueues: the same columns, and ``enqueue_batch_after_commit(jobs.send_deliveries)``.
    """
    now = clock.now()
    rows = []
    for n in range(start, start + size):
        if n % 2:
            user_id = users[n % len(users)]
            rows.append({"kind": "password_reset", "to_email": f"user{user_id}@bench.test", "to_name": "利用者",
                         "locale": "ja", "payload": {"user_id": user_id}, "due_at": now, "created_at": now,
                         "status": DeliveryStatus.PENDING, "attempts": 0, "last_error": ""})
        else:
            booking_id, slot_id, email_address, name = bookings[n % len(bookings)]
            rows.append({"kind": "booking_confirmation", "to_email": email_address, "to_name": name, "locale": "ja",
                         "host_id": host_id, "booking_id": booking_id, "slot_id": slot_id, "payload": {},
                         "due_at": now, "created_at": now, "status": DeliveryStatus.PENDING, "attempts": 0,
                         "last_error": ""})
    for delivery_id in db.session.scalars(insert(Delivery).returning(Delivery.id), rows):
        enqueue_batch_after_commit(jobs.send_deliveries, delivery_id, queue="mail")
    db.session.commit()


# --- the run --------------------------------------------------------------------------------------



def run(args) -> dict:
    """Set everything up, feed the outbox, sample RSS; everything is stopped on return."""
    workdir = Path(tempfile.mkdtemp(prefix="worker-rss-"))
    procs = Processes(workdir)
    controller = None
    try:
        redis_url = start_redis(procs, workdir)
        redis = Redis.from_url(redis_url)

        sink = CountingSink()
        controller = Controller(sink, hostname="127.0.0.1", port=free_port())
        controller.start()

        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                   SMTP_PORT=str(controller.port), MAILBOX_DIR=str(workdir / "mailbox"),
                   APP_BASE_URL="http://127.0.0.1:5000", PYTHONUNBUFFERED="1")
        env.pop("APP_ENV", None)
        app = create_app(Config, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                         SMTP_PORT=controller.port, APP_BASE_URL=env["APP_BASE_URL"])
        with app.app_context():
            upgrade()  # the real migrations
            users, bookings = seed(1000)
            host_id = db.session.scalar(select(User.id).where(User.email == "host@bench.test"))

        worker = procs.start("worker", [sys.executable, "worker.py"], env)
        procs.start("scheduler", [sys.executable, "worker.py", "scheduler"], env)
        wait_for(lambda: Worker.count(connection=redis) >= 1, 30, "worker registered", procs)
        redis.close()
        started_rss = rss(worker.pid)

        samples = []  # (received, seconds, worker rss, largest horse rss since the previous sample)
        written, next_mark, horse_peak = 0, args.every, 0
        started = last_progress = time.monotonic()
        last_seen = 0
        with app.app_context():
            while sink.received < args.n:
                received = sink.received
                if written < args.n and written - received < args.in_flight:
                    size = min(args.batch, args.n - written)
                    write_batch(written, size, users, bookings, host_id)
                    written += size
                else:
                    time.sleep(0.05)
                for pid in children(worker.pid):
                    horse_peak = max(horse_peak, rss(pid) or 0)
                if received > last_seen:
                    last_seen, last_progress = received, time.monotonic()
                elif time.monotonic() - last_progress > args.stall:
                    raise TimeoutError(f"nothing received for {args.stall:.0f} s ({received} of {args.n})")
                if received >= next_mark or received >= args.n:
                    samples.append((received, time.monotonic() - started, rss(worker.pid), horse_peak))
                    print_sample(samples)
                    horse_peak = 0
                    next_mark += args.every
                procs.check_alive()
            if not samples or samples[-1][0] < sink.received:
                samples.append((sink.received, time.monotonic() - started, rss(worker.pid), horse_peak))
                print_sample(samples)
            time.sleep(0.5)  # a duplicate would arrive right behind the last mail
            db.session.rollback()
            statuses = dict(db.session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        return {"samples": samples, "received": sink.received, "statuses": statuses, "n": args.n,
                "started_rss": started_rss, "logs": workdir}
    except BaseException:
        procs.print_tails()
        raise
    finally:
        procs.stop()
        if controller is not None:
            controller.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def print_sample(samples: list[tuple]) -> None:
    """One line per sample, as it is taken."""
    if len(samples) == 1:
        print(f"{'sent':>8} {'seconds':>8} {'sends/s':>8} {'worker RSS':>11} {'horse RSS max':>14}")
    received, seconds, worker_rss, horse = samples[-1]
    previous = samples[-2] if len(samples) > 1 else (0, 0.0)
    rate = (received - previous[0]) / max(seconds - previous[1], 1e-9)
    print(f"{received:8d} {seconds:8.1f} {rate:8.0f} {worker_rss / MIB:8.1f} MiB {horse / MIB:11.1f} MiB", flush=True)


def report(r: dict) -> None:
    """The growth between the first and the last sample, and the row states."""
    samples = r["samples"]
    first, last = samples[0], samples[-1]
    sent = r["statuses"].get(DeliveryStatus.SENT, 0)
    others = {s.value: c for s, c in r["statuses"].items() if s != DeliveryStatus.SENT}
    print(f"\nworker RSS: {r['started_rss'] / MIB:.1f} MiB at start, {first[2] / MIB:.1f} MiB after {first[0]:,} "
          f"sends, {last[2] / MIB:.1f} MiB after {last[0]:,}: growth {(last[2] - first[2]) / MIB:+.1f} MiB "
          f"({(last[2] - first[2]) / max(last[0] - first[0], 1):+.1f} B per send)")
    print(f"largest work horse RSS: {first[3] / MIB:.1f} MiB in the first {first[0]:,} sends, "
          f"{last[3] / MIB:.1f} MiB in the last window: growth {(last[3] - first[3]) / MIB:+.1f} MiB")
    print(f"received {r['received']:,} of {r['n']:,}; rows marked sent {sent:,}" + (f", other: {others}" if others else ""))
    if r["logs"].exists():
        print(f"subprocess logs kept in {r['logs']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="emails to send (default 100000)")
    parser.add_argument("--every", type=int, default=10_000, help="print RSS every this many sends (default 10000)")
    parser.add_argument("--batch", type=int, default=200, help="emails per transaction, so per send job (default 200)")
    parser.add_argument("--in-flight", type=int, default=2000,
                        help="at most this many emails written and not yet received (default 2000)")
    parser.add_argument("--stall", type=float, default=60, help="give up after this many seconds without a mail")
    parser.add_argument("--database-url", default=None,
                        help="an empty database to use instead of a temporary SQLite file (e.g. PostgreSQL)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args(argv)
    run_and_report(run, report, args)


if __name__ == "__main__":
    main()
