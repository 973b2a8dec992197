"""Delivery through a distant relay: the local sink playing one (latency, a connection limit, 421),
and SMTP lanes sized from the relay's reply time, within a ceiling, never more than it allows."""
import logging
import os
import smtplib
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from redis import Redis

import worker
from app import clock
from app.extensions import db
from app.mail import outbox
from app.mail.relay_places import RelayPlaces
from app.mail.smtp import LaneLost, SmtpLanes
from app.models import Delivery, DeliveryStatus
from devtools.mail_sink import TOO_MANY_CONNECTIONS, RelayBehaviour, RelayController
from tests.conftest import free_port, wait_until
from tests.test_outbox import queue_resets

ROOT = Path(__file__).resolve().parent.parent


class Recipients:
    """An aiosmtpd handler that records each message's recipients (``handle_DATA``, as the sink's Maildir has)."""

    def __init__(self):
        self.recipients: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def relay():
    """Start a sink playing a relay: ``relay(latency=…, max_connections=…)`` → (handler, behaviour, port)."""
    controllers = []

    def start(**behaviour):
        handler = Recipients()
        controller = RelayController(handler, RelayBehaviour(**behaviour), hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        return handler, controller.relay, controller.port

    yield start
    for controller in controllers:
        controller.stop()


def message(text: str = "本文") -> MIMEText:
    return MIMEText(text, "plain", "utf-8")


# --- the sink playing a relay ---------------------------------------------------------------------

def test_the_sink_answers_each_message_after_its_latency(relay):
    handler, _, port = relay(latency=0.15, command_latency=0.05)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as conn:
        started = time.monotonic()
        assert conn.noop()[0] == 250
        noop = time.monotonic() - started
        started = time.monotonic()
        conn.sendmail("from@booking.test", ["guest@example.com"], message().as_bytes())
        sent = time.monotonic() - started
    assert noop >= 0.05  # a command: the command latency
    assert sent >= 0.15 + 2 * 0.05  # MAIL and RCPT, then the message's own reply
    assert handler.recipients == ["guest@example.com"]


def test_the_sink_refuses_a_connection_over_its_limit_with_421_and_frees_the_place_on_close(relay):
    handler, behaviour, port = relay(max_connections=2)
    first = smtplib.SMTP("127.0.0.1", port, timeout=5)
    second = smtplib.SMTP("127.0.0.1", port, timeout=5)
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", port, timeout=5)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (421, b"4.7.0 Too many connections")
    first.quit()
    wait_until(lambda: behaviour.open == 1)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as third:  # the place is free again
        third.sendmail("from@booking.test", ["guest@example.com"], message().as_bytes())
    second.quit()
    assert (behaviour.refused, behaviour.most_open) == (1, 2)
    assert handler.recipients == ["guest@example.com"]


@contextmanager
def sink_command(maildir: Path, *options):
    """``python -m devtools.mail_sink`` on a free port, as ``make run`` starts it; yields the port."""
    port = free_port()
    with subprocess.Popen([sys.executable, "-m", "devtools.mail_sink", "--port", str(port), "--maildir",
                           str(maildir), *options], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        try:
            assert "SMTP sink on" in proc.stdout.readline()  # listening
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_the_sink_command_plays_a_relay_and_by_default_stays_the_plain_local_sink(tmp_path):
    with sink_command(tmp_path / "relay", "--latency-ms", "120", "--max-connections", "1") as port:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as conn:
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtplib.SMTP("127.0.0.1", port, timeout=5)
            assert refused.value.smtp_code == 421
            started = time.monotonic()
            conn.sendmail("from@booking.test", ["guest@example.com"], message().as_bytes())
            assert time.monotonic() - started >= 0.12
        assert len(os.listdir(tmp_path / "relay" / "new")) == 1  # stored in its Maildir, as before

    with sink_command(tmp_path / "plain") as port:  # no options: every connection served, no delay
        connections = [smtplib.SMTP("127.0.0.1", port, timeout=5) for _ in range(5)]
        for i, conn in enumerate(connections):
            conn.sendmail("from@booking.test", [f"guest{i}@example.com"], message().as_bytes())
            conn.quit()
        assert len(os.listdir(tmp_path / "plain" / "new")) == 5


# --- lanes sized from the relay's reply time --------------------------------------------------------

def point_at(app, monkeypatch, port: int, connections: int, ceiling: int) -> None:
    monkeypatch.setitem(app.config, "SMTP_PORT", port)
    monkeypatch.setitem(app.config, "MAIL_SMTP_CONNECTIONS", connections)
    monkeypatch.setitem(app.config, "MAIL_SMTP_MAX_CONNECTIONS", ceiling)


def rows_by_status() -> dict:
    db.session.rollback()
    return {status.value: count for status, count in
            db.session.query(Delivery.status, db.func.count()).group_by(Delivery.status)}


def test_a_slow_relay_gets_more_connections_up_to_the_ceiling_and_no_more(app, make_host, relay, monkeypatch):
    handler, behaviour, port = relay(latency=0.1)
    point_at(app, monkeypatch, port, connections=2, ceiling=6)
    hosts = [make_host() for _ in range(40)]
    queue_resets(hosts)
    assert outbox.send_due() == 40
    assert behaviour.most_open == 6  # grew from 2 while each reply took 0.1 s, stopped at the ceiling
    assert behaviour.refused == 0
    assert sorted(handler.recipients) == sorted(host.email for host in hosts)  # each exactly once
    assert rows_by_status() == {"sent": 40}


def test_a_busy_server_next_door_does_not_get_every_connection(app, make_host, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="app.mail.smtp")
    with sink_command(tmp_path / "box") as port:  # the product's own sink, in its own process: no latency
        point_at(app, monkeypatch, port, connections=2, ceiling=16)
        hosts = [make_host() for _ in range(150)]
        queue_resets(hosts)
        with worker.quick_thread_switches():  # as in a worker process
            assert outbox.send_due() == 150
    parser = BytesHeaderParser()
    served = [parser.parsebytes(path.read_bytes())["X-RcptTo"] for path in (tmp_path / "box" / "new").iterdir()]
    assert sorted(served) == sorted(host.email for host in hosts)
    # Its replies come late only because it is busy: doubling the connections stopped paying off
    # (the distant relay of the test above got every connection up to the ceiling).
    opened = [record.lanes for record in caplog.records if hasattr(record, "lanes")]
    assert max(opened, default=2) < 16


def test_a_relay_that_says_too_many_connections_gets_fewer_and_every_email_once(app, make_host, relay,
                                                                                  monkeypatch):
    handler, behaviour, port = relay(latency=0.05, max_connections=3)
    point_at(app, monkeypatch, port, connections=2, ceiling=8)
    hosts = [make_host() for _ in range(40)]
    queue_resets(hosts)
    assert outbox.send_due() == 40
    assert behaviour.refused >= 1  # it grew past the relay's limit, was told 421, and backed off
    assert behaviour.most_open <= 3  # never served more than the relay allows
    assert sorted(handler.recipients) == sorted(host.email for host in hosts)  # each exactly once
    assert rows_by_status() == {"sent": 40}
    assert {row.attempts for row in db.session.query(Delivery)} == {1}  # 421 cost no attempt


def test_when_the_relay_is_full_the_last_connection_waits_and_tries_again(app, make_host, relay, monkeypatch):
    handler, behaviour, port = relay(max_connections=1)
    point_at(app, monkeypatch, port, connections=2, ceiling=2)
    hosts = [make_host() for _ in range(5)]
    queue_resets(hosts)
    someone_else = smtplib.SMTP("127.0.0.1", port, timeout=5)  # another client holds the only place
    threading.Timer(0.5, someone_else.quit).start()
    assert outbox.send_due() == 5
    assert behaviour.refused >= 2  # both lanes were refused; one went away, the other came back
    assert sorted(handler.recipients) == sorted(host.email for host in hosts)
    assert rows_by_status() == {"sent": 5}


def test_a_relay_refusing_for_long_leaves_the_emails_to_be_retried_not_failed(app, make_host, relay, monkeypatch):
    handler, _, port = relay(max_connections=1)
    point_at(app, monkeypatch, port, connections=1, ceiling=1)
    monkeypatch.setattr(SmtpLanes, "REFUSED_WAIT", 0.01)
    queue_resets([make_host() for _ in range(3)])
    with smtplib.SMTP("127.0.0.1", port, timeout=5):  # holds the only place throughout
        assert outbox.send_due() == 0
    assert handler.recipients == []
    assert rows_by_status() == {"pending": 3}  # due again after the backoff
    assert all("421" in row.last_error for row in db.session.query(Delivery))


# --- lanes never leave their caller waiting ---------------------------------------------------------

def lanes_config(port: int) -> dict:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_USERNAME": "", "SMTP_PASSWORD": "",
            "SMTP_STARTTLS": False, "SMTP_TIMEOUT": 5, "MAIL_FROM": "no-reply@booking.test",
            "MAIL_SMTP_CONNECTIONS": 2, "MAIL_SMTP_MAX_CONNECTIONS": 4}


def finished_within(lanes: SmtpLanes, seconds: float) -> list:
    """``lanes.finished(wait=True)`` in a thread; fail the test instead of hanging it."""
    results = []
    waiter = threading.Thread(target=lambda: results.extend(lanes.finished(wait=True)), daemon=True)
    waiter.start()
    waiter.join(seconds)
    assert not waiter.is_alive(), "finished(wait=True) is still waiting"
    return results


def test_an_unexpected_error_in_a_lane_comes_back_as_that_message_s_result(relay):
    handler, _, port = relay()
    with SmtpLanes(lanes_config(port)) as lanes:
        lanes.submit("odd", message(), 12345)  # not an address: smtplib fails with a TypeError
        lanes.submit("fine", message(), "guest@example.com")
        results = dict(finished_within(lanes, 10))
        assert isinstance(results["odd"], TypeError)
        assert results["fine"] is None
        lanes.submit("after", message(), "later@example.com")  # the lane is still there
        assert finished_within(lanes, 10) == [("after", None)]
    assert handler.recipients == ["guest@example.com", "later@example.com"]


def test_lanes_that_died_do_not_leave_finished_waiting(relay, monkeypatch):
    _, _, port = relay()
    monkeypatch.setattr(SmtpLanes, "LIVENESS_CHECK", 0.1)
    config = lanes_config(port)
    del config["SMTP_TIMEOUT"]  # every lane dies building its connection's settings (KeyError)
    with SmtpLanes(config) as lanes:
        for i in range(3):
            lanes.submit(i, message(), f"guest{i}@example.com")
        results = finished_within(lanes, 10)
    assert sorted(item for item, _ in results) == [0, 1, 2]
    assert all(isinstance(error, LaneLost) for _, error in results)


def test_the_switch_interval_is_the_worker_process_s_and_restored_on_exit(relay):
    _, _, port = relay()
    before = sys.getswitchinterval()
    with SmtpLanes(lanes_config(port)) as lanes:  # a mail helper leaves it alone
        assert sys.getswitchinterval() == before
        lanes.submit(1, message(), "guest@example.com")
        assert finished_within(lanes, 10) == [(1, None)]
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError):
        with worker.quick_thread_switches():
            assert sys.getswitchinterval() == min(worker.SWITCH_INTERVAL, before)
            raise RuntimeError("the worker stopped on an error")
    assert sys.getswitchinterval() == before


class FullServer(Recipients):
    """A server with no capacity to spare (the sink next door on a full machine): every message takes
    ``seconds`` × the messages it is working on, so more connections only make every reply later."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.working = 0

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        self.working += 1
        try:
            await asyncio.sleep(self.seconds * self.working)
        finally:
            self.working -= 1
        return await super().handle_DATA(server, session, envelope)


def test_workers_sharing_a_busy_server_do_not_each_take_every_connection(app, make_host, monkeypatch, caplog):
    """Other workers keep the server busy: a worker's doubling takes a share of theirs (its own rate
    rises) while every reply waits longer. The reply time tells it: the lanes stop short of the ceiling."""
    caplog.set_level(logging.INFO, logger="app.mail.smtp")
    handler = FullServer(0.004)
    controller = RelayController(handler, RelayBehaviour(), hostname="127.0.0.1", port=free_port())
    controller.start()
    stop = threading.Event()

    def another_worker():  # one connection of another worker, sending all along
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as conn:
            while not stop.is_set():
                conn.sendmail("other@example.com", ["other@example.com"], message().as_bytes())

    others = [threading.Thread(target=another_worker, daemon=True) for _ in range(4)]
    try:
        for thread in others:
            thread.start()
        point_at(app, monkeypatch, controller.port, connections=2, ceiling=16)
        hosts = [make_host() for _ in range(300)]
        queue_resets(hosts)
        with worker.quick_thread_switches():
            assert outbox.send_due() == 300
    finally:
        stop.set()
        for thread in others:
            thread.join()
        controller.stop()
    ours = [address for address in handler.recipients if address != "other@example.com"]
    assert sorted(ours) == sorted(host.email for host in hosts)
    opened = [record.lanes for record in caplog.records if hasattr(record, "lanes")]
    assert opened and max(opened) < 16


# --- the relay's limit is shared by every worker ----------------------------------------------------

def places_at(redis_url: str, port: int, limit: int, **redis_options) -> RelayPlaces:
    return RelayPlaces(Redis.from_url(redis_url, **redis_options), limit, f"127.0.0.1:{port}")


def send_from_workers(port: int, workers: int, each: int, places_for) -> list:
    """``workers`` senders (as worker processes would), each with its own lanes growing up to 8 and
    its own Redis client; each sends ``each`` messages. Returns the errors that came back."""
    errors = []

    def one_worker(w: int) -> None:
        config = dict(lanes_config(port), MAIL_SMTP_MAX_CONNECTIONS=8)
        with SmtpLanes(config, places=places_for()) as lanes:
            for i in range(each):
                lanes.submit(i, message(), f"w{w}-{i}@example.com")
            errors.extend(error for _, error in finished_within(lanes, 60) if error is not None)

    threads = [threading.Thread(target=one_worker, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_workers_together_never_open_more_connections_than_the_relay_allows(relay, redis_url):
    # Without a shared count, two workers growing their lanes to 8 each cross the relay's limit of
    # 4 (it says 421, they back off): what the shared places are for.
    handler, behaviour, port = relay(latency=0.05, max_connections=4)
    send_from_workers(port, workers=2, each=40, places_for=lambda: None)
    assert behaviour.refused >= 1

    handler, behaviour, port = relay(latency=0.05, max_connections=4)
    places = places_at(redis_url, port, 4)
    assert send_from_workers(port, workers=2, each=40, places_for=lambda: places_at(redis_url, port, 4)) == []
    assert behaviour.refused == 0  # the relay never had to say 421
    assert behaviour.most_open == 4  # both grew, together up to the relay's limit
    assert sorted(handler.recipients) == sorted(f"w{w}-{i}@example.com" for w in range(2) for i in range(40))
    assert places.taken() == 0  # every place given back with its connection


def test_the_places_of_a_killed_worker_come_back_by_themselves(app, make_host, relay, redis_url, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="app.mail.smtp")
    handler, behaviour, port = relay(max_connections=2)
    point_at(app, monkeypatch, port, connections=2, ceiling=2)
    monkeypatch.setitem(app.config, "MAIL_SMTP_RELAY_CONNECTIONS", 2)
    with subprocess.Popen(  # another worker, holding both places, then SIGKILLed: it gives nothing back
            [sys.executable, "-c", "import sys, time; from redis import Redis; from app.mail.relay_places import "
             "RelayPlaces; RelayPlaces.TTL = 1.5; p = RelayPlaces(Redis.from_url(sys.argv[1]), 2, sys.argv[2]); "
             "print(p.take() is not None and p.take() is not None, flush=True); time.sleep(60)",
             redis_url, f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "True"
        finally:
            holder.kill()
    places = places_at(redis_url, port, 2)
    assert places.taken() == 2
    hosts = [make_host() for _ in range(4)]
    queue_resets(hosts)
    assert outbox.send_due() == 4  # the last lane waited for a place to lapse, then sent
    assert behaviour.refused == 0
    assert sorted(handler.recipients) == sorted(host.email for host in hosts)
    assert any("no place left at the relay" in record.getMessage() for record in caplog.records)
    assert places.taken() == 0


def test_an_email_that_finds_every_place_taken_by_the_other_workers_waits_without_losing_an_attempt(
        app, make_host, relay, redis_url, monkeypatch):
    handler, behaviour, port = relay()
    point_at(app, monkeypatch, port, connections=1, ceiling=1)
    monkeypatch.setitem(app.config, "MAIL_SMTP_RELAY_CONNECTIONS", 1)
    monkeypatch.setattr(SmtpLanes, "REFUSED_WAIT", 0.01)
    other_worker = places_at(redis_url, port, 1)
    place = other_worker.take()  # sending all along: the only place stays taken
    hosts = [make_host() for _ in range(3)]
    queue_resets(hosts)
    before = clock.now()
    assert outbox.send_due() == 0
    assert handler.recipients == [] and behaviour.refused == 0  # the relay was not asked: it refused nothing
    assert rows_by_status() == {"pending": 3}
    rows = db.session.query(Delivery).all()
    assert {row.attempts for row in rows} == {0}  # the claim's attempt was given back
    assert all(row.last_error.startswith("RelayFull") for row in rows)
    assert all(before + outbox.RELAY_FULL_WAIT - timedelta(seconds=1) <= clock.as_utc(row.due_at)
               <= clock.now() + outbox.RELAY_FULL_WAIT for row in rows)  # tried again soon

    other_worker.give_back(place)
    clock.advance(outbox.RELAY_FULL_WAIT)
    assert outbox.send_due() == 3
    assert sorted(handler.recipients) == sorted(host.email for host in hosts)
    assert rows_by_status() == {"sent": 3}


def test_a_connection_whose_place_lapsed_closes_and_takes_one_afresh(relay, redis_url, monkeypatch):
    handler, behaviour, port = relay()
    monkeypatch.setattr(RelayPlaces, "TTL", 0.3)
    monkeypatch.setattr(SmtpLanes, "IDLE_CHECK", 0.05)
    places = places_at(redis_url, port, 1)
    redis = Redis.from_url(redis_url)
    with SmtpLanes(lanes_config(port), size=1, places=places) as lanes:
        lanes.submit(1, message(), "first@example.com")
        assert finished_within(lanes, 10) == [(1, None)]
        assert behaviour.open == 1
        # Its lease lapsed (as while a send was stuck for longer than the TTL) and another took the place.
        redis.delete(places.key)
        redis.zadd(places.key, {"another-worker": 2 ** 50})
        wait_until(lambda: behaviour.open == 0)  # its renewal failed: it closed its connection
        redis.zrem(places.key, "another-worker")
        lanes.submit(2, message(), "second@example.com")
        assert finished_within(lanes, 10) == [(2, None)]
    assert handler.recipients == ["first@example.com", "second@example.com"]
    assert places.taken() == 0


def test_when_redis_does_not_answer_email_still_goes_with_a_warning(relay, caplog):
    handler, _, port = relay()
    places = places_at(f"redis://127.0.0.1:{free_port()}/0", port, 1, socket_connect_timeout=0.5)
    with SmtpLanes(lanes_config(port), places=places) as lanes:
        for i in range(3):
            lanes.submit(i, message(), f"guest{i}@example.com")
        assert sorted(finished_within(lanes, 20)) == [(0, None), (1, None), (2, None)]
    assert sorted(handler.recipients) == ["guest0@example.com", "guest1@example.com", "guest2@example.com"]
    warnings = [record for record in caplog.records if "not counted across workers" in record.getMessage()]
    assert len(warnings) == 1  # said once, not per connection
