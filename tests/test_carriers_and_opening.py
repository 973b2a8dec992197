"""Delivery assurance for Japanese mobile carriers: the carriers' 「受信設定」 steps at booking,
the guest who has not opened their join page 3 hours before an online lesson, and the address
that does not take mail (a permanent SMTP refusal), all through the real SMTP server."""
from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller

from app import clock
from app.booking.carriers import carrier_of
from app.extensions import db
from app.mail import outbox
from app.models import Booking, Delivery, DeliveryStatus
from tests.conftest import body_html, body_text, free_port

NOON = datetime(2030, 6, 20, 3, 0, tzinfo=timezone.utc)  # 12:00 JST

CARRIER_ADDRESSES = [
    ("hanako@docomo.ne.jp", "docomo"), ("hanako@mail.docomo.ne.jp", "docomo"),
    ("hanako@ezweb.ne.jp", "au"), ("hanako@x.ezweb.ne.jp", "au"),
    ("hanako@au.com", "au"), ("hanako@sub.au.com", "au"),
    ("hanako@softbank.ne.jp", "softbank"), ("hanako@t.softbank.ne.jp", "softbank"),
    ("hanako@i.softbank.jp", "softbank"), ("hanako@x.i.softbank.jp", "softbank"),
]
STEPS = {"docomo": "受信リスト設定", "au": "迷惑メールフィルター", "softbank": "許可するメールの登録"}
HELP = {"docomo": "https://www.docomo.ne.jp/", "au": "https://www.au.com/", "softbank": "https://www.softbank.jp/"}


def text(response) -> str:
    return response.get_data(as_text=True)


def test_carrier_domains_and_their_subdomains_only():
    for address, key in CARRIER_ADDRESSES:
        assert carrier_of(address).key == key, address
    for address in ("a@example.com", "a@gmail.com", "a@fau.com", "a@docomo.ne.jp.example.com", "a@notdocomo.ne.jp",
                    "a@softbank.jp", "a@xi.softbank.jp", "", None):
        assert carrier_of(address) is None, address


@pytest.mark.parametrize("address,key", CARRIER_ADDRESSES)
def test_a_carrier_guest_gets_the_receiving_steps_on_the_booked_page_and_in_the_email(
        app, client, make_host, make_service, make_slot, run_jobs, smtp, address, key, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_FROM", "予約システム <no-reply@mail.yoyaku.test>")  # restored after
    service = make_service(make_host(), title="書道レッスン", venue="in_person", venue_address="東京都渋谷区1-1")
    slot = make_slot(service)
    booked = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "花子",
                                                    "guest_email": address, "confirm": "1"})
    assert booked.status_code == 302
    page = text(client.get(booked.headers["Location"]))
    assert 'id="carrier-guidance"' in page
    assert "mail.yoyaku.test からのメールを受信できるように設定してください。" in page
    assert STEPS[key] in page and f'href="{HELP[key]}' in page

    run_jobs()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "【お申し込み完了】書道レッスン"
    for body in (body_text(message), body_html(message)):
        assert "mail.yoyaku.test からのメールを受信できるように設定してください。" in body
        assert STEPS[key] in body and HELP[key] in body


def test_any_other_address_gets_no_carrier_steps(client, make_host, make_service, make_slot, run_jobs, smtp):
    service = make_service(make_host(), venue="in_person", venue_address="東京都渋谷区1-1")
    slot = make_slot(service)
    booked = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "花子",
                                                    "guest_email": "hanako@example.com", "confirm": "1"})
    page = text(client.get(booked.headers["Location"]))
    assert "carrier-guidance" not in page and "受信できるように設定" not in page
    run_jobs()
    [message] = smtp.wait_for(1)
    assert "受信できるように設定" not in body_text(message) and "受信できるように設定" not in body_html(message)


# --- the guest who has not opened their join page ---------------------------------------------------

NOT_OPENED = "まだ参加URLを開いていません"


@pytest.fixture
def lesson_at_five(client, make_host, make_service, make_slot, make_booking, link_zoom, zoom, run_jobs, smtp):
    """A Zoom lesson at 17:00 JST, booked by two guests whose URL emails were sent at noon."""
    clock.travel_to(NOON)
    host = make_host(name="山田 花子")
    link_zoom(host)  # logs the host in
    service = make_service(host, title="書道教室", capacity=5)
    slot = make_slot(service, starts_in=timedelta(hours=5))
    first, second = make_booking(slot, "佐藤 一郎", "ichiro@example.com"), make_booking(slot, "鈴木 次郎", "jiro@docomo.ne.jp")
    run_jobs()
    urls = db.session.query(Delivery).filter_by(kind="meeting_url").all()
    assert len(urls) == 2 and all(d.status == DeliveryStatus.SENT for d in urls)
    return host, slot, first, second


def guest_row(page: str, booking_id: int) -> str:
    row = page[page.index(f'id="booking-{booking_id}"'):]
    return row[: row.index("</tr>")]


def test_not_opened_is_shown_within_three_hours_and_gone_once_opened(client, lesson_at_five):
    host, slot, first, second = lesson_at_five
    assert NOT_OPENED not in text(client.get(f"/slots/{slot.id}"))  # five hours before
    assert NOT_OPENED not in text(client.get("/dashboard"))

    clock.advance(timedelta(hours=2, minutes=1))  # 2 h 59 min before
    page = text(client.get(f"/slots/{slot.id}"))
    for booking in (first, second):
        row = guest_row(page, booking.id)
        assert NOT_OPENED in row and f'name="booking_id" value="{booking.id}"' in row and "URLを再送" in row
    dashboard = text(client.get("/dashboard"))
    attention = dashboard[dashboard.index('id="attention"'):dashboard.index("</section>", dashboard.index('id="attention"'))]
    for booking in (first, second):
        item = attention[attention.index(f'id="attention-not-opened-{booking.id}"'):]
        item = item[: item.index("</li>")]
        assert NOT_OPENED in item and f'name="booking_id" value="{booking.id}"' in item and "URLを再送" in item

    # The guest pressed 「参加する」 on /j/<token>/go (the lesson page sets it).
    db.session.get(Booking, first.id).join_opened_at = clock.now()
    db.session.commit()
    page = text(client.get(f"/slots/{slot.id}"))
    assert NOT_OPENED not in guest_row(page, first.id) and NOT_OPENED in guest_row(page, second.id)
    dashboard = text(client.get("/dashboard"))
    assert f"attention-not-opened-{first.id}" not in dashboard and f"attention-not-opened-{second.id}" in dashboard

    # The one-tap resend from the dashboard sends the URL email again, through SMTP.
    done = client.post(f"/slots/{slot.id}/resend-url", {"booking_id": second.id}, form_url="/dashboard")
    assert done.status_code == 302

    clock.advance(timedelta(hours=4))  # the lesson (60 min) is over
    assert NOT_OPENED not in text(client.get(f"/slots/{slot.id}"))
    assert NOT_OPENED not in text(client.get("/dashboard"))


def test_not_opened_is_never_shown_for_in_person_or_own_url_services(
        client, login, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    clock.travel_to(NOON)
    host = make_host()
    in_person = make_slot(make_service(host, title="対面", venue="in_person", venue_address="東京都渋谷区1-1"),
                          starts_in=timedelta(hours=2))
    own_url = make_slot(make_service(host, title="自分のURL", venue="fixed_url", meeting_url="https://meet.example.com/x"),
                        starts_in=timedelta(hours=2))
    for slot in (in_person, own_url):
        make_booking(slot)
    run_jobs()
    login(host)
    for slot in (in_person, own_url):
        assert NOT_OPENED not in text(client.get(f"/slots/{slot.id}"))
    assert NOT_OPENED not in text(client.get("/dashboard"))


# --- the address that does not take mail -----------------------------------------------------------

UNDELIVERABLE = "このメールアドレスには届きません（宛先不明）"


class RefusingInbox:
    """An SMTP handler that refuses ``nobody@`` for good (550), ``busy@`` for now (452), and
    accepts the rest."""

    def __init__(self, inbox):
        self.inbox = inbox

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "452 4.2.2 Mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return await self.inbox.handle_DATA(server, session, envelope)


@pytest.fixture
def refusing_smtp(app, smtp):
    controller = Controller(RefusingInbox(smtp), hostname="127.0.0.1", port=free_port())
    controller.start()
    real_port, app.config["SMTP_PORT"] = app.config["SMTP_PORT"], controller.port
    yield smtp
    app.config["SMTP_PORT"] = real_port
    controller.stop()


def test_a_permanent_refusal_reads_undeliverable_and_a_temporary_failure_does_not(
        app, client, lesson_at_five, make_booking, refusing_smtp, run_jobs):
    host, slot, first, second = lesson_at_five
    nobody, busy = make_booking(slot, "宛先 不明", "nobody@example.com"), make_booking(slot, "満杯 さん", "busy@example.com")
    for _ in range(app.config["MAIL_MAX_ATTEMPTS"]):  # the 452 is retried until given up; the 550 fails at once
        outbox.send_due()
        clock.advance(timedelta(minutes=20))
    db.session.rollback()
    confirmations = {d.to_email: d for d in db.session.query(Delivery).filter_by(kind="booking_confirmation")}
    assert confirmations["nobody@example.com"].status == DeliveryStatus.FAILED
    assert confirmations["nobody@example.com"].attempts == 1
    assert confirmations["busy@example.com"].status == DeliveryStatus.FAILED
    assert confirmations["busy@example.com"].attempts == app.config["MAIL_MAX_ATTEMPTS"]

    page = text(client.get(f"/slots/{slot.id}"))
    row = guest_row(page, nobody.id)
    assert UNDELIVERABLE in row and 'class="undeliverable"' in row and "550" not in row
    row = guest_row(page, busy.id)
    assert "送信失敗" in row and UNDELIVERABLE not in row and "送信できませんでした。" in row
    assert UNDELIVERABLE not in guest_row(page, first.id)


def test_an_undeliverable_url_email_reads_so_on_the_dashboard(client, lesson_at_five, refusing_smtp, run_jobs):
    host, slot, first, second = lesson_at_five
    bounced = db.session.query(Delivery).filter_by(booking_id=first.id, kind="meeting_url").one()
    bounced.status, bounced.last_error = DeliveryStatus.FAILED, "SMTPRecipientsRefused: {'x': (550, b'5.1.1 no such user')}"
    db.session.commit()
    clock.advance(timedelta(hours=2, minutes=30))
    dashboard = text(client.get("/dashboard"))
    item = dashboard[dashboard.index(f'id="attention-booking-{first.id}"'):]
    item = item[: item.index("</li>")]
    assert UNDELIVERABLE in item and "URLを再送" in item
    assert f"attention-not-opened-{first.id}" not in dashboard  # its URL email never arrived
    assert f"attention-not-opened-{second.id}" in dashboard
    page = text(client.get(f"/slots/{slot.id}"))
    assert UNDELIVERABLE in guest_row(page, first.id) and NOT_OPENED not in guest_row(page, first.id)
