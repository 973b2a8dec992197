"""Bulk message benchmark: fan a 5,000-recipient message out, then deliver it, through real parts.

    .venv/bin/python bench/bulk_fanout.py              # 5,000 recipients, 2 workers
    .venv/bin/python bench/bulk_fanout.py --n 1000

Prints the fan-out time (one bulk INSERT of the outbox rows + the send jobs in Redis), the
delivery rate of the real workers (``python worker.py``) to a local aiosmtpd sink, and, in the
same run, the raw rate of a plain smtplib loop to that sink and the ratio. Targets from the
issue: fan-out ≤ 2 s, delivery ratio ≥ 0.8. It prints; it never asserts.
"""
import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flask_migrate import upgrade  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from app import clock, create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.messages import bulk  # noqa: E402
from app.models import Booking, Delivery, DeliveryStatus, Message, Service, Slot  # noqa: E402
from app.services.catalog import create_service  # noqa: E402
from config import Config  # noqa: E402
from outbox_delivery import (SINKS, Processes, cpu_per_mail, spent_cpu, measure_raw_rate, start_redis,  # noqa: E402
                             wait_for)


def seed(n: int):
    """A host, one service, one slot with ``n`` confirmed guests (bulk inserts); returns (service, slot)."""
    from app.auth import accounts

    host = accounts.create_user("bulk-bench@example.com", "ベンチ ホスト", "bench-pass-123")
    service = create_service(host, kind="class_event", title="大人数イベント", description="", duration_minutes=60,
                             capacity=n, venue="in_person", host_notes="")
    slot = Slot(service=service, starts_at=clock.now() + timedelta(days=3), capacity=n, booked_count=n)
    db.session.add(slot)
    db.session.flush()
    db.session.execute(insert(Booking), [
        {"slot_id": slot.id, "guest_name": f"参加者{i}", "guest_email": f"guest{i}@example.com", "mailbox": f"guest{i}@example.com",
         "cancel_token": f"c{i:07d}x" * 3, "join_token": f"j{i:07d}x" * 3, "created_at": clock.now()}
        for i in range(n)])
    db.session.commit()
    return service.id, slot.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--sink", choices=sorted(SINKS), default="maildir",
                        help="the SMTP server: the product's own (maildir, default) or one that only counts")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    procs = Processes(workdir)
    sink = None
    try:
        redis_url = start_redis(procs, workdir)
        redis = Redis.from_url(redis_url)
        sink = SINKS[args.sink](procs, workdir)
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        import os
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                   SMTP_PORT=str(sink.port), BULK_DAILY_LIMIT=str(args.n * 2), PYTHONUNBUFFERED="1")
        env.pop("APP_ENV", None)
        app = create_app(Config, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url, SMTP_HOST="127.0.0.1",
                         SMTP_PORT=sink.port, BULK_DAILY_LIMIT=args.n * 2)
        with app.app_context():
            upgrade()
            service_id, slot_id = seed(args.n)
            service = db.session.get(Service, service_id)
            message = bulk.compose(service.host, service, slot_ids=[slot_id], all_upcoming=False,
                                   subject="{guest_name}様へのお知らせ", body="{service_title}は{slot_datetime}からです。",
                                   scheduled_at=clock.now() + timedelta(hours=1))
            message_id = message.id
            # Fan-out: what happens when the scheduled time comes (rows + send jobs).
            db.session.execute(Message.__table__.update().where(Message.id == message_id)
                               .values(scheduled_at=clock.now()))
            db.session.commit()
            started = time.perf_counter()
            written = bulk.fan_out(message_id)
            fan_out_seconds = time.perf_counter() - started
            jobs = sum(redis.llen(key) for key in redis.keys("rq:queue:*"))
        sample = None
        with app.app_context():
            from app.mail.render import build_message, render_delivery
            from app.mail.smtp import WIRE
            row = db.session.scalars(select(Delivery).where(Delivery.bulk_message_id == message_id).limit(1)).one()
            sample = build_message(row, render_delivery(row)).as_bytes(policy=WIRE)
        raw_rate, _ = measure_raw_rate(sink, min(args.n, 2000), sample, flatten=False)
        cpu_before = procs.cpu()

        python = sys.executable
        t0 = time.time()
        for i in range(args.workers):
            procs.start(f"worker{i + 1}", [python, "worker.py"], env)
        wait_for(lambda: Worker.count(connection=redis) >= args.workers, 30, "workers registered", procs)
        wait_for(lambda: sink.count() >= written, args.timeout, "all delivered", procs, interval=0.2)
        arrivals = sorted(t for t, _ in sink.take())
        spent = spent_cpu(cpu_before, procs.cpu())
        first, last = arrivals[0], arrivals[-1]
        rate = written / max(last - first, 1e-6)
        with app.app_context():
            sent = db.session.query(Delivery).filter_by(bulk_message_id=message_id, status=DeliveryStatus.SENT).count()
            status = db.session.get(Message, message_id).status
        print(f"recipients            {written}")
        print(f"fan-out (rows + jobs) {fan_out_seconds:.2f} s   ({jobs} send jobs queued)   target ≤ 2 s")
        print(f"delivery rate         {rate:.0f} mails/s   (workers started → last mail {last - t0:.1f} s)")
        print(f"raw smtplib rate      {raw_rate:.0f} mails/s   (SMTP server: --sink {args.sink})")
        print(f"ratio                 {rate / raw_rate:.2f}   target ≥ 0.8")
        print(f"CPU per mail (ms)     {cpu_per_mail(spent, written)}")
        print(f"rows sent / received  {sent} / {len(arrivals)}   message status {status.value}")
    finally:
        procs.stop()
        if sink is not None:
            sink.close()


if __name__ == "__main__":
    main()
