"""The outbox delivery engine: atomic claims, retries, crash recovery, the Redis-independent sweep."""
import threading
from datetime import timedelta

import pytest

import worker
from app import clock
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus
from app.queue import get_queue


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
    assert worker.enqueue_sweep_if_due() is True
    assert worker.enqueue_sweep_if_due() is False  # one sweep at a time
    run_jobs()
    assert smtp.wait_for(1)[0]["To"].addresses[0].addr_spec == host.email


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
    app.config["SMTP_PORT"], real_port = 1, app.config["SMTP_PORT"]
    try:
        for _ in range(app.config["MAIL_MAX_ATTEMPTS"]):
            outbox.send_due()
            clock.advance(timedelta(hours=1))
    finally:
        app.config["SMTP_PORT"] = real_port
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
