"""The outbox delivery engine: atomic claims, retries, crash recovery, the Redis-independent sweep."""
import asyncio
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from rq import Worker
from rq.job import Job, JobStatus
from sqlalchemy import event

import worker
from app import clock
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus
from app.queue import get_queue, get_redis
from tests.conftest import free_port, send_with_smtp_down_until_given_up


def queue_resets(hosts, n_each=1):
    """Write password-reset emails (a kind that needs no booking) for each host."""
    for host in hosts:
        for _ in range(n_each):
            outbox.queue_email("password_reset", to_email=host.email, to_name=host.display_name,
                               payload={"user_id": host.id})
    db.session.commit()


def test_two_workers_never_send_the_same_email_twice(app, make_host, smtp):
    hosts = [make_host() for _ in range(40)]
    queue_resets(hosts)
    barrier = threading.Barrier(2)
    sent = []

    def work():
        with app.app_context():
            barrier.wait()
            sent.append(outbox.send_due(batch_size=5))
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sent) == 40
    messages = smtp.wait_for(40)
    recipients = [m["To"].addresses[0].addr_spec for m in messages]
    assert sorted(recipients) == sorted(h.email for h in hosts)  # each exactly once
    assert db.session.query(Delivery).filter_by(status=DeliveryStatus.SENT).count() == 40


def test_a_lost_redis_message_is_found_by_the_scheduler_sweep(app, make_host, run_jobs, smtp):
    host = make_host()
    queue_resets([host])
    get_queue("mail").empty()  # the send job is lost (say Redis restarted without persistence)
    run_jobs()
    assert smtp.messages == []
    assert worker.enqueue_sweeps_if_due() == 1  # no worker is listening: one sweep, for the next to come
    assert worker.enqueue_sweeps_if_due() == 0  # that sweep is still waiting
    run_jobs()
    assert smtp.wait_for(1)[0]["To"].addresses[0].addr_spec == host.email


def test_a_claim_takes_no_more_than_its_limit(app, make_host):
    queue_resets([make_host() for _ in range(12)])
    token = outbox.claim(5)
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(claim_token=token).count() == 5  # PostgreSQL too


def test_smtp_down_is_retried_with_backoff(app, make_host, smtp):
    host = make_host()
    queue_resets([host])
    real_port = app.config["SMTP_PORT"]
    app.config["SMTP_PORT"] = 1  # nothing listens there
    try:
        assert outbox.send_due() == 0
    finally:
        app.config["SMTP_PORT"] = real_port
    db.session.rollback()
    delivery = db.session.query(Delivery).one()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "ConnectionRefused" in delivery.last_error
    assert outbox.send_due() == 0  # not due again before the backoff
    clock.advance(timedelta(minutes=2))
    assert outbox.send_due() == 1
    assert len(smtp.wait_for(1)) == 1


def test_gives_up_after_max_attempts(app, make_host, smtp):
    queue_resets([make_host()])
    send_with_smtp_down_until_given_up(app)
    db.session.rollback()
    assert db.session.query(Delivery).one().status == DeliveryStatus.FAILED


class WorkerCrash(BaseException):
    """Stands for the worker process dying (SIGKILL) in the middle of a batch."""


def test_crash_mid_batch_then_retry_sends_only_to_those_not_served(app, make_host, smtp, monkeypatch):
    hosts = [make_host() for _ in range(5)]
    queue_resets(hosts)
    real_build = outbox.build_message
    calls = {"n": 0}

    def build_then_die(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise WorkerCrash()
        return real_build(*args)

    monkeypatch.setattr(outbox, "build_message", build_then_die)
    with pytest.raises(WorkerCrash):
        outbox.send_due()
    monkeypatch.setattr(outbox, "build_message", real_build)
    db.session.rollback()
    assert len(smtp.wait_for(2)) == 2
    assert outbox.send_due() == 0  # the dead worker's claim is still fresh
    clock.advance(timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT"] + 1))
    assert outbox.send_due() == 3
    recipients = sorted(m["To"].addresses[0].addr_spec for m in smtp.wait_for(5))
    assert recipients == sorted(h.email for h in hosts)


def test_japanese_headers_and_both_parts(app, make_host, smtp):
    host = make_host(name="山田 花子")
    queue_resets([host])
    outbox.send_due()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "パスワード再設定のご案内"
    assert message["To"].addresses[0].display_name == "山田 花子"
    assert message.get_body(preferencelist=("plain",))["Content-Type"].params["charset"] == "utf-8"
    assert message.get_body(preferencelist=("html",)) is not None
    assert smtp.envelopes[0][1] == [host.email]


def test_cancelled_rows_are_not_sent(app, make_host, smtp):
    host = make_host()
    outbox.queue_email("password_reset", to_email=host.email, payload={"user_id": host.id},
                       due_at=clock.now() + timedelta(hours=1))
    db.session.commit()
    assert outbox.cancel_pending(host_id=None, to_email=host.email) == 1
    db.session.commit()
    clock.advance(timedelta(hours=2))
    assert outbox.send_due() == 0


@pytest.fixture
def mail_workers(app):
    """Register RQ workers listening on ``mail`` (as running ``python worker.py`` processes do)."""
    started = []

    def register(count: int) -> list[Worker]:
        new = [Worker([get_queue("mail")], connection=get_redis()) for _ in range(count)]
        for rq_worker in new:
            rq_worker.register_birth()
        started.extend(new)
        return new

    yield register
    for rq_worker in started:
        rq_worker.register_death()


def test_the_scheduler_starts_one_sweep_per_worker_and_they_share_the_burst(app, make_host, mail_workers,
                                                                            run_jobs, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_BATCH_SIZE", 2)
    hosts = [make_host() for _ in range(5)]
    queue_resets(hosts)
    get_queue("mail").empty()  # leave the rows to the scheduler
    mail_workers(2)
    assert worker.enqueue_sweeps_if_due() == 2  # two workers, three batches due
    assert worker.enqueue_sweeps_if_due() == 0  # both sweeps are still waiting
    run_jobs()
    recipients = sorted(m["To"].addresses[0].addr_spec for m in smtp.wait_for(5))
    assert recipients == sorted(h.email for h in hosts)  # each exactly once


def test_a_sweep_left_behind_by_a_killed_worker_is_started_again(app, make_host, mail_workers):
    queue_resets([make_host()])
    get_queue("mail").empty()
    [live] = mail_workers(1)
    assert worker.enqueue_sweeps_if_due() == 1
    sweep = Job.fetch("mail-sweep-0", connection=get_redis())
    get_queue("mail").remove(sweep)  # a worker took it …
    sweep.worker_name = live.name
    sweep.set_status(JobStatus.STARTED)
    sweep.save()
    assert worker.enqueue_sweeps_if_due() == 0  # … and is alive: the sweep is running
    sweep.worker_name = "killed-by-sigkill"
    sweep.save()
    assert worker.enqueue_sweeps_if_due() == 1  # its worker is gone: RQ would notice only minutes later
    assert get_queue("mail").job_ids == ["mail-sweep-0"]


def test_the_scheduler_wakes_up_when_the_next_email_is_due(app, make_host):
    host = make_host()
    assert worker.seconds_until_next_sweep(60) == 60  # nothing waiting: the interval caps the sleep
    outbox.queue_email("password_reset", to_email=host.email, payload={"user_id": host.id},
                       due_at=clock.now() + timedelta(seconds=30))
    db.session.commit()
    assert 29 < worker.seconds_until_next_sweep(60) <= 30
    assert worker.seconds_until_next_sweep(5) == 5
    clock.advance(timedelta(seconds=30))
    assert outbox.claim(10) is not None  # claimed, and its worker dies before marking it
    db.session.rollback()
    timeout = app.config["MAIL_CLAIM_TIMEOUT"]
    assert timeout - 1 < worker.seconds_until_next_sweep(timeout + 60) <= timeout  # when the claim expires


def test_a_batch_reads_its_rows_once_however_many_commits_follow(app, make_host, smtp):
    hosts = [make_host() for _ in range(10)]
    queue_resets(hosts)
    selects = []

    def count_delivery_selects(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "FROM deliveries" in statement:
            selects.append(statement)

    event.listen(db.engine, "before_cursor_execute", count_delivery_selects)
    try:
        assert outbox.send_due() == 10
    finally:
        event.remove(db.engine, "before_cursor_execute", count_delivery_selects)
    assert len(selects) == 1  # not one re-SELECT per row after each row's own commit
    assert len(smtp.wait_for(10)) == 10


def test_a_sweep_stops_claiming_when_its_time_is_up(app, make_host, smtp, monkeypatch):
    queue_resets([make_host()])
    monkeypatch.setitem(app.config, "MAIL_SWEEP_SECONDS", 0)
    assert outbox.send_due() == 0  # left for the next sweep, well before RQ's job timeout
    assert outbox.due_count() == 1


def test_a_row_that_cannot_be_rendered_does_not_block_its_batch(app, make_host, smtp):
    good = make_host()
    outbox.queue_email("password_reset", to_email="ghost@example.com", payload={"user_id": 999999})
    outbox.queue_email("no_such_kind", to_email="broken@example.com")
    queue_resets([good])
    assert outbox.send_due() == 1
    assert smtp.wait_for(1)[0]["To"].addresses[0].addr_spec == good.email
    db.session.rollback()
    broken = db.session.query(Delivery).filter_by(to_email="broken@example.com").one()
    assert broken.status == DeliveryStatus.PENDING and broken.last_error.startswith("render: KeyError")
    assert db.session.query(Delivery).filter_by(to_email="ghost@example.com").one().status == DeliveryStatus.CANCELLED


class RejectingInbox:
    """An SMTP handler that answers 550 to one address and accepts the rest."""

    def __init__(self, inbox):
        self.inbox = inbox

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return await self.inbox.handle_DATA(server, session, envelope)


def test_permanent_550_fails_at_once_and_is_not_retried(app, make_host, smtp):
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    controller = Controller(RejectingInbox(smtp), hostname="127.0.0.1", port=free_port())
    controller.start()
    real_port, app.config["SMTP_PORT"] = app.config["SMTP_PORT"], controller.port
    try:
        host = make_host()
        outbox.queue_email("password_reset", to_email="nobody@example.com", payload={"user_id": host.id})
        queue_resets([host])
        assert outbox.send_due() == 1
    finally:
        app.config["SMTP_PORT"] = real_port
        controller.stop()
    db.session.rollback()
    rejected = db.session.query(Delivery).filter_by(to_email="nobody@example.com").one()
    assert rejected.status == DeliveryStatus.FAILED and rejected.attempts == 1 and "550" in rejected.last_error


def test_a_second_scheduler_stands_by(app):
    from app.queue import get_redis

    first = get_redis().lock("scheduler-leader", timeout=10)
    second = get_redis().lock("scheduler-leader", timeout=10)
    assert worker._lead(first) is True
    assert worker._lead(second) is False
    assert worker._lead(first) is True  # the leader keeps its lock
    first.release()
    assert worker._lead(second) is True


def test_scheduler_pass_enqueues_the_preflight_once_a_minute(app):
    from rq.job import Job

    last = worker.scheduler_pass(1000.0, 0.0)
    assert last == 1000.0
    assert Job.fetch(worker.PREFLIGHT_JOB_ID, connection=get_queue().connection).get_status() == "queued"
    assert worker.scheduler_pass(1030.0, last) == 1000.0  # not again within the minute


class SlowServer:
    """An SMTP server that takes a while to accept each message (like a busy relay) and records
    how many messages it was receiving at the same time, and over which connections."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.receiving = 0
        self.most_at_once = 0
        self.recipients = []
        self.peers = set()

    async def handle_DATA(self, server, session, envelope):
        self.receiving += 1  # the handlers run on the server's one event loop: no lock needed
        self.most_at_once = max(self.most_at_once, self.receiving)
        await asyncio.sleep(self.seconds)
        self.receiving -= 1
        self.recipients.extend(envelope.rcpt_tos)
        self.peers.add(session.peer)
        return "250 OK"


def test_a_sweep_sends_over_several_connections_at_once_and_marks_each_row_once(app, make_host, monkeypatch):
    server = SlowServer(seconds=0.2)
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setitem(app.config, "SMTP_PORT", controller.port)
    monkeypatch.setitem(app.config, "MAIL_SMTP_CONNECTIONS", 3)
    try:
        hosts = [make_host() for _ in range(9)]
        queue_resets(hosts)
        assert outbox.send_due() == 9
    finally:
        controller.stop()
    assert sorted(server.recipients) == sorted(h.email for h in hosts)  # each exactly once
    assert server.most_at_once == 3  # while one server reply was slow, the other lanes went on
    assert len(server.peers) == 3  # one connection per lane, reused for its messages
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(status=DeliveryStatus.SENT).count() == 9


def test_rows_sent_are_marked_together_and_none_is_left_unmarked(app, make_host, monkeypatch):
    """A sweep marks the rows the relay accepted together (``GATHER_ROWS`` at a time, or once the
    first waited ``GATHER_SECONDS``): that bounds what a killed worker sends again, as the
    messages in flight do. Whatever ends the marks (the batch's end, an error), what waits is
    marked."""
    hosts = [make_host() for _ in range(outbox._Marks.GATHER_ROWS + 3)]
    queue_resets(hosts)
    token = outbox.claim(100)
    rows = db.session.scalars(db.select(Delivery).where(Delivery.claim_token == token).order_by(Delivery.id)).all()
    for row in rows:
        row.message_id = outbox.message_id_for(row)
    db.session.commit()

    def sent_in_database() -> int:
        with db.engine.connect() as conn:
            return conn.scalar(db.select(db.func.count()).select_from(Delivery)
                               .where(Delivery.status == DeliveryStatus.SENT))

    monkeypatch.setattr(outbox._Marks, "GATHER_SECONDS", 3600)  # only the count decides, below
    with outbox._Marks() as marks:
        marks.results([(row, None) for row in rows[:3]])
        assert sent_in_database() == 0  # waiting for more
        marks.results([(row, None) for row in rows[3:outbox._Marks.GATHER_ROWS]])
        assert sent_in_database() == outbox._Marks.GATHER_ROWS
        marks.results([(rows[-3], None)])
        assert sent_in_database() == outbox._Marks.GATHER_ROWS
    assert sent_in_database() == outbox._Marks.GATHER_ROWS + 1  # marked on the way out

    monkeypatch.setattr(outbox._Marks, "GATHER_SECONDS", 0.05)
    with pytest.raises(WorkerCrash), outbox._Marks() as marks:
        marks.results([(rows[-2], None)])
        assert sent_in_database() == outbox._Marks.GATHER_ROWS + 1
        threading.Event().wait(0.06)
        marks.results([(rows[-1], None)])  # the first waited long enough: both are marked
        assert sent_in_database() == len(rows)
        raise WorkerCrash()
    db.session.rollback()
    assert {row.status for row in db.session.scalars(db.select(Delivery)).all()} == {DeliveryStatus.SENT}


def test_a_batch_takes_the_emails_of_one_lesson_together(app, make_host, make_service, make_slot):
    """A lesson's URL emails fall due at one moment but are written as its guests book, mixed with
    other lessons': a claim takes them by due time and then by lesson, so a batch holds whole
    lessons (one meeting check, one calendar entry each) rather than a guest or two of many."""
    host = make_host()
    service = make_service(host)
    slots = [make_slot(service, starts_in=timedelta(days=2, hours=h)) for h in range(3)]
    due = clock.now() - timedelta(seconds=1)
    for guest in range(4):  # booked in turn: lesson 0, 1, 2, 0, 1, 2, …
        for slot in reversed(slots):
            outbox.queue_email("password_reset", to_email=f"g{guest}-{slot.id}@example.com", slot_id=slot.id,
                               payload={"user_id": host.id}, due_at=due)
    db.session.commit()
    taken = []
    while token := outbox.claim(4):
        taken.append({row.slot_id for row in db.session.scalars(
            db.select(Delivery).where(Delivery.claim_token == token)).all()})
    assert taken == [{slot.id} for slot in sorted(slots, key=lambda slot: slot.id)]
