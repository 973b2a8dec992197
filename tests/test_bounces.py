"""Bounces that come back after an email left us: delivery status notifications (DSNs) sent over
real SMTP to the bounce reader (``flask bounces serve``), matched to the guest email they are
about, and read on the host's pages as 「このメールアドレスには届きません（宛先不明）」.

Each email is really sent through the outbox to the test SMTP server; the reports are realistic
ones (``tests/dsn/*.eml``: Postfix, a Japanese carrier's Sendmail with ``text/rfc822-headers``,
Gmail, Exim's plain text, a delayed one) filled in with the email's own headers, as the relay
would return them.
"""
import logging
import re
import smtplib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from string import Template

import pytest
from aiosmtpd.controller import Controller

from app import clock
from app.extensions import db
from app.mail.bounce_server import BounceServer
from app.models import Delivery, DeliveryStatus
from devtools.mail_sink.late_bounce import LateBounces
from tests.conftest import free_port, wait_until
from tests.test_carriers_and_opening import guest_row, lesson_at_five  # noqa: F401 (a fixture)
from tests.test_phone_layout import MEASURE, MIN_TARGET, SENTENCE_CHARS, Sweep

BOUNCE_ADDRESS = "bounces@mail.yoyaku.test"
NOON = datetime(2030, 6, 20, 3, 0, tzinfo=timezone.utc)  # 12:00 JST
UNDELIVERABLE = "このメールアドレスには届きません（宛先不明）"
NOT_OPENED = "まだ参加URLを開いていません"
STAFF_BOUNCED = "バウンス（送信後に不達の通知）"
DSN_DIR = Path(__file__).parent / "dsn"


@pytest.fixture
def bounce_address(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_BOUNCE_ADDRESS", BOUNCE_ADDRESS)
    return BOUNCE_ADDRESS


@pytest.fixture
def reader(app, bounce_address):
    """The bounce reader, listening on a free port."""
    server = BounceServer(app, "127.0.0.1", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def bounce_log(caplog):
    """The reader's log records, from INFO up."""
    caplog.set_level(logging.INFO, logger="app.mail.bounces")
    return caplog


def deliver(reader, raw: bytes, to: str = BOUNCE_ADDRESS):
    """Send ``raw`` to the reader as a relay sends a bounce (null sender); return its reply to DATA."""
    with smtplib.SMTP("127.0.0.1", reader.port, timeout=10) as relay:
        relay.ehlo("mx1.example.jp")
        relay.mail("")
        code, _ = relay.rcpt(to)
        assert code == 250, code
        reply = relay.data(re.sub(rb"\r?\n", b"\r\n", raw))  # smtplib sends bytes as they are; SMTP's line end is CRLF
    db.session.rollback()  # the test's session (its requests' too) sees what the reader committed
    return reply


def dsn(name: str, original, recipient: str, message_id: str | None = None) -> bytes:
    """The report ``tests/dsn/<name>.eml`` about ``original`` (a received message) for ``recipient``."""
    whole = original.as_bytes().replace(b"\r\n", b"\n").decode("ascii")
    headers = whole.split("\n\n", 1)[0]
    text = Template((DSN_DIR / f"{name}.eml").read_text()).substitute(
        bounce_address=BOUNCE_ADDRESS, recipient=recipient, original=whole, original_headers=headers,
        message_id=message_id or original["Message-ID"])
    return text.encode("utf-8")


def received(smtp, delivery: Delivery):
    """The message the test SMTP server received for this outbox row."""
    return next(m for m in smtp.messages if m["Message-ID"] == delivery.message_id)


def fresh(delivery_id: int) -> Delivery:
    db.session.rollback()  # see what the reader committed
    return db.session.get(Delivery, delivery_id)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def confirmed(bounce_address, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    """An in-person lesson's guest whose confirmation email was sent: ``(host, slot, booking, delivery)``."""
    def book(email="taro@example.jp"):
        host = make_host(name="山田 花子")
        slot = make_slot(make_service(host, title="書道教室", venue="in_person", venue_address="東京都渋谷区1-1"))
        booking = make_booking(slot, "佐藤 太郎", email)
        run_jobs()
        delivery = db.session.query(Delivery).filter_by(booking_id=booking.id, kind="booking_confirmation").one()
        assert delivery.status == DeliveryStatus.SENT
        return host, slot, booking, delivery

    return book


# --- the envelope and the Message-ID -----------------------------------------------------------------

def test_every_email_is_sent_from_the_bounce_address_with_a_message_id_nobody_can_guess(confirmed, smtp):
    host, slot, booking, delivery = confirmed()
    [(mail_from, recipients)] = smtp.envelopes
    assert mail_from == BOUNCE_ADDRESS and recipients == ["taro@example.jp"]
    message_id = received(smtp, delivery)["Message-ID"]
    # 128 random-looking bits, then the row's id: not the creation time (it was guessable from it).
    assert re.fullmatch(rf"<[0-9a-f]{{32}}\.{delivery.id}\.outbox@booking\.local>", message_id), message_id
    stamp = str(int(delivery.created_at.replace(tzinfo=timezone.utc).timestamp() * 1_000_000))
    assert stamp not in message_id


# --- reports that mark ---------------------------------------------------------------------------------

REASONS = {
    "postfix": "550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table",
    "carrier_headers": "5.1.1 550 Unknown user {to}",
    "exim": "550 5.1.1 <{to}>: Recipient address rejected: User unknown",
    "gmail": ("550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
              "the recipient's email address for typos or unnecessary spaces. For more information, go to "
              "https://support.google.com/mail/?p=NoSuchUser d9-"),
}


@pytest.mark.parametrize("name,to", [("postfix", "taro@example.jp"), ("carrier_headers", "taro@docomo.ne.jp"),
                                     ("gmail", "taro.yamada@gmail.com"), ("exim", "taro@example.jp")])
def test_a_permanent_failure_report_marks_the_email_and_the_slot_page_reads_undeliverable(
        client, login, confirmed, reader, smtp, name, to):
    host, slot, booking, delivery = confirmed(to)
    code, reply = deliver(reader, dsn(name, received(smtp, delivery), to))
    assert code == 250, reply

    marked = fresh(delivery.id)
    assert marked.bounced_at is not None and marked.status == DeliveryStatus.SENT  # it did leave us
    assert marked.bounce_reason == REASONS[name].format(to=to)[:200]
    assert len(marked.bounce_reason) <= 200

    login(host)
    row = guest_row(text(client.get(f"/slots/{slot.id}")), booking.id)
    assert UNDELIVERABLE in row and 'class="undeliverable"' in row
    assert "送信済み" not in row  # it was sent, but it never arrived: the host is not told it is fine
    assert "550" not in row and "5.1.1" not in row and "Recipient" not in row  # the raw words are for staff


def test_the_same_report_twice_keeps_the_first(confirmed, reader, smtp):
    host, slot, booking, delivery = confirmed()
    report = dsn("postfix", received(smtp, delivery), "taro@example.jp")
    deliver(reader, report)
    first = fresh(delivery.id).bounced_at
    clock.advance(timedelta(hours=1))
    assert deliver(reader, report)[0] == 250
    assert fresh(delivery.id).bounced_at == first


# --- reports that must not mark ------------------------------------------------------------------------

def test_a_delayed_report_is_logged_and_marks_nothing(confirmed, reader, smtp, bounce_log):
    host, slot, booking, delivery = confirmed()
    assert deliver(reader, dsn("delayed", received(smtp, delivery), "taro@example.jp"))[0] == 250
    assert fresh(delivery.id).bounced_at is None
    [record] = [r for r in bounce_log.records if r.name == "app.mail.bounces"]
    assert record.levelno == logging.INFO and f"delivery {delivery.id}" in record.getMessage()
    assert "delayed" in record.getMessage() and "4.2.2" in record.getMessage()
    assert "taro" not in bounce_log.text  # no address in the logs, only the delivery id


def test_a_report_about_another_recipient_or_with_a_made_up_message_id_marks_nothing(
        confirmed, reader, smtp, bounce_log):
    host, slot, booking, delivery = confirmed()
    original = received(smtp, delivery)
    # Someone who received the email (its Message-ID) reports another address of theirs as failed.
    deliver(reader, dsn("postfix", original, "someone-else@example.jp"))
    # Someone who knows the guest's address and guesses a Message-ID: the row's id, the old time
    # stamp form, and the new form with a made-up code.
    stamp = int(delivery.created_at.replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
    for guess in (f"<{stamp}.{delivery.id}.outbox@booking.local>", f"<{'0' * 32}.{delivery.id}.outbox@booking.local>",
                  f"<{'a' * 32}.999999.outbox@booking.local>"):
        fake = dsn("postfix", original, "taro@example.jp").replace(delivery.message_id.encode(), guess.encode())
        assert deliver(reader, fake)[0] == 250
    assert fresh(delivery.id).bounced_at is None
    outcomes = [r.getMessage() for r in bounce_log.records if r.name == "app.mail.bounces"]
    assert len(outcomes) == 4 and "wrong_recipient" in outcomes[0]
    assert all("unknown_message" in outcome for outcome in outcomes[1:])


JUNK = [
    b"\x00\xff\xfe garbage \x80\x81",
    b"Subject: =?utf-8?b?5a6J44GE?=\r\nContent-Type: text/plain\r\n\r\nhello, cheap watches\r\n",
    (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
     b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: ;;;\r\nAction: \xff\r\nStatus: 9.9\r\n--x"),
    b"X-Failed-Recipients: =?bogus?q?x?=, <>\r\n\r\n550 5.1.1 nope\r\n",
]


def test_junk_is_accepted_and_dropped_and_the_reader_keeps_reading(confirmed, reader, smtp, bounce_log):
    host, slot, booking, delivery = confirmed()
    for junk in JUNK:
        assert deliver(reader, junk)[0] == 250
    assert fresh(delivery.id).bounced_at is None
    assert sum("dropped" in r.getMessage() for r in bounce_log.records) == len(JUNK)
    deliver(reader, dsn("postfix", received(smtp, delivery), "taro@example.jp"))
    assert fresh(delivery.id).bounced_at is not None


def test_the_reader_takes_its_own_address_only_and_refuses_an_oversized_message(confirmed, reader, smtp):
    host, slot, booking, delivery = confirmed()
    with smtplib.SMTP("127.0.0.1", reader.port, timeout=10) as relay:
        relay.ehlo("mx1.example.jp")
        relay.mail("")
        assert relay.rcpt("postmaster@mail.yoyaku.test")[0] == 550  # never an open relay
        assert relay.rcpt("taro@example.jp")[0] == 550
        assert relay.rcpt(BOUNCE_ADDRESS.upper())[0] == 250
    report = dsn("postfix", received(smtp, delivery), "taro@example.jp")
    oversized = report + b"\r\n" + (b"x" * 76 + b"\r\n") * 14_000  # 1.1 MB: a real DSN is a few kB
    assert deliver(reader, oversized) == (552, b"Error: Too much mail data")
    assert fresh(delivery.id).bounced_at is None
    assert deliver(reader, report)[0] == 250  # the next one is read as usual
    assert fresh(delivery.id).bounced_at is not None


def test_the_reader_asks_the_relay_to_try_again_when_the_database_does_not_answer(app, confirmed, reader, smtp,
                                                                                 tmp_path):
    from app import create_app
    from config import TestConfig

    host, slot, booking, delivery = confirmed()
    report = dsn("postfix", received(smtp, delivery), "taro@example.jp")
    cut_off = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no-such-folder/app.db",
                         REDIS_URL=app.config["REDIS_URL"], MAIL_BOUNCE_ADDRESS=BOUNCE_ADDRESS)
    server = BounceServer(cut_off, "127.0.0.1", free_port()).start()
    try:
        assert deliver(server, report) == (451, b"4.3.0 Temporary failure, please try again later")
        # Through a pipe (``bounces read -``), the mail server is told the same: EX_TEMPFAIL.
        with cut_off.app_context():  # the test's own app context would be the command's otherwise
            result = cut_off.test_cli_runner().invoke(args=["bounces", "read", "-"], input=report)
        assert result.exit_code == 75, result.output
    finally:
        server.stop()
        with cut_off.app_context():
            db.engine.dispose()
    assert fresh(delivery.id).bounced_at is None
    assert deliver(reader, report)[0] == 250  # the relay's next try, once the database answers
    assert fresh(delivery.id).bounced_at is not None


def test_the_read_command_reads_a_saved_bounce(app, confirmed, bounce_address, smtp, tmp_path):
    host, slot, booking, delivery = confirmed()
    saved = tmp_path / "bounce.eml"
    saved.write_bytes(dsn("carrier_headers", received(smtp, delivery), "taro@example.jp"))
    result = app.test_cli_runner().invoke(args=["bounces", "read", str(saved)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"marked: delivery {delivery.id}"
    assert fresh(delivery.id).bounced_at is not None


# --- the lesson day: the URL email bounced ----------------------------------------------------------------

@pytest.fixture
def lesson(bounce_address, lesson_at_five):
    """``lesson_at_five``'s Zoom lesson at 17:00 JST, its two guests' URL emails sent at noon from the
    bounce address: ``(host, slot, ichiro@example.com's booking, jiro@docomo.ne.jp's)``."""
    return lesson_at_five


def url_email(booking) -> Delivery:
    return db.session.query(Delivery).filter_by(booking_id=booking.id, kind="meeting_url").one()


def attention_item(dashboard: str, item_id: str) -> str:
    item = dashboard[dashboard.index(f'id="{item_id}"'):]
    return item[: item.index("</li>")]


def test_a_bounced_url_email_reads_undeliverable_on_the_dashboard_not_unopened_and_staff_see_why(
        client, login, make_host, lesson, reader, smtp):
    host, slot, ichiro, jiro = lesson
    bounced = url_email(jiro)
    code, _ = deliver(reader, dsn("carrier_headers", received(smtp, bounced), "jiro@docomo.ne.jp"))
    assert code == 250

    clock.advance(timedelta(hours=2, minutes=30))  # 2 h 30 min before: unopened URLs are pointed out
    dashboard = text(client.get("/dashboard"))
    item = attention_item(dashboard, f"attention-booking-{jiro.id}")
    assert UNDELIVERABLE in item and "鈴木 次郎" in item and "URLを再送" in item
    assert f"attention-not-opened-{jiro.id}" not in dashboard  # it never arrived: not "not opened"
    assert NOT_OPENED in attention_item(dashboard, f"attention-not-opened-{ichiro.id}")
    assert "Unknown user" not in dashboard

    page = text(client.get(f"/slots/{slot.id}"))
    row = guest_row(page, jiro.id)
    assert UNDELIVERABLE in row and NOT_OPENED not in row and "Unknown user" not in row
    assert NOT_OPENED in guest_row(page, ichiro.id) and UNDELIVERABLE not in guest_row(page, ichiro.id)

    staff = make_host(email="ops@example.com", name="運営", is_staff=True)
    client.post("/logout", form_url="/dashboard")
    login(staff)
    log = text(client.get("/staff/deliveries?q=jiro"))
    assert STAFF_BOUNCED in log and "5.1.1 550 Unknown user jiro@docomo.ne.jp" in log
    assert "通知の受信: 2030年6月20日(木) 12:00" in log  # Japan time, as the rest of the log
    other = text(client.get("/staff/deliveries?q=ichiro"))
    assert STAFF_BOUNCED not in other and "送信済み" in other


# --- the local sink plays a relay that accepts, then bounces ----------------------------------------------

@pytest.fixture
def bouncing_sink(app, smtp, reader):
    """The test SMTP server wrapped as ``make run``'s sink is: ``unknown-…`` and ``@bounce.test``
    addresses are accepted, then bounced to the reader."""
    controller = Controller(LateBounces(smtp, reader=("127.0.0.1", reader.port), delay=0.05),
                            hostname="127.0.0.1", port=free_port())
    controller.start()
    real_port, app.config["SMTP_PORT"] = app.config["SMTP_PORT"], controller.port
    yield smtp
    app.config["SMTP_PORT"] = real_port
    controller.stop()


def test_the_sink_bounces_reserved_addresses_after_accepting_them(
        client, login, bouncing_sink, make_host, make_service, make_slot, make_booking, run_jobs):
    host = make_host(name="山田 花子")
    slot = make_slot(make_service(host, title="書道教室", venue="in_person", venue_address="東京都渋谷区1-1"))
    unknown = make_booking(slot, "不明 一郎", "unknown-ichiro@example.com")
    domain = make_booking(slot, "不明 次郎", "jiro@bounce.test")
    fine = make_booking(slot, "無事 三郎", "saburo@example.com")
    run_jobs()
    rows = {d.booking_id: d for d in db.session.query(Delivery).filter_by(kind="booking_confirmation")}
    assert all(d.status == DeliveryStatus.SENT for d in rows.values())  # the relay said 250 to each

    wait_until(lambda: fresh(rows[unknown.id].id).bounced_at and fresh(rows[domain.id].id).bounced_at, timeout=5)
    for booking in (unknown, domain):
        delivery = fresh(rows[booking.id].id)
        assert delivery.bounce_reason == (f"550 5.1.1 <{delivery.to_email}>: Recipient address rejected: "
                                          "User unknown in virtual mailbox table")
    assert fresh(rows[fine.id].id).bounced_at is None
    assert [m["To"].addresses[0].addr_spec for m in bouncing_sink.messages] == ["saburo@example.com"]  # delivered

    login(host)
    page = text(client.get(f"/slots/{slot.id}"))
    assert UNDELIVERABLE in guest_row(page, unknown.id) and UNDELIVERABLE in guest_row(page, domain.id)
    assert UNDELIVERABLE not in guest_row(page, fine.id)


# --- in a browser, at 375 and 1280 px --------------------------------------------------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "bounces"


@pytest.mark.browser
def test_browser_the_bounced_guest_on_the_slot_page_dashboard_and_staff_log(
        page, live_server, make_host, lesson, reader, smtp):
    host, slot, ichiro, jiro = lesson
    deliver(reader, dsn("gmail", received(smtp, url_email(jiro)), "jiro@docomo.ne.jp"))
    clock.advance(timedelta(hours=2, minutes=30))
    make_host(email="ops@example.com", name="運営", is_staff=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_in = Sweep(page).log_in

    def look(name, url, shows):
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": 812})
            page.goto(url)
            assert page.get_by_text(shows).first.is_visible()
            found = page.evaluate(MEASURE, [width == 375, MIN_TARGET, SENTENCE_CHARS])
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            assert found["overflow"] <= 0, (name, width, found.get("wide"))
            if width == 375:
                assert not found["small"], (name, found["small"])

    log_in(host.email)
    look("slot", f"/slots/{slot.id}", UNDELIVERABLE)
    look("dashboard", "/dashboard", UNDELIVERABLE)
    log_in("ops@example.com")
    look("staff-deliveries", "/staff/deliveries?q=jiro", STAFF_BOUNCED)
