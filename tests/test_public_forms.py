"""Abuse resistance of the public side (issue 16): the booking, cancel and reset forms cannot be
turned into a mail cannon, a bot's bookings can be undone, and quotas cannot be sidestepped.

Through the real app (CSRF on), real Redis (the limits' counters), the outbox and SMTP.
"""
from datetime import timedelta

import pytest

from app import clock
from app.extensions import db
from app.mail import outbox
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Message, MessageStatus, Slot
from tests.conftest import body_text


def book(client, service, slot, email, name="佐藤 一郎"):
    """The booking form's final post (「この内容で申し込む」 on the confirm step: ``confirm``)."""
    return client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": name, "guest_email": email,
                                                   "confirm": "1"})


def sweep() -> None:
    while outbox.send_due():
        pass


@pytest.fixture
def open_service(make_host, make_service, make_slot):
    """A manual-URL service with two roomy slots (no Zoom involved)."""
    service = make_service(make_host(name="山田 花子"), title="書道", venue="manual_url", capacity=50)
    return service, make_slot(service, starts_in=timedelta(days=3)), make_slot(service, starts_in=timedelta(days=4))


# --- per client address ---------------------------------------------------------------------------

def test_one_address_books_ten_times_a_minute_at_most(client, open_service):
    service, slot, _ = open_service
    statuses = [book(client, service, slot, f"guest{n}@example.com").status_code for n in range(11)]
    assert statuses[:10] == [302] * 10
    assert statuses[10] == 429
    refused = book(client, service, slot, "late@example.com")
    assert refused.status_code == 429 and "短時間にたくさんの送信がありました" in refused.get_data(as_text=True)
    assert client.get(f"/s/{service.public_id}").status_code == 200  # reading the page is never limited


def test_password_reset_requests_are_limited_per_address_and_per_mailbox(client, make_host, smtp):
    host = make_host(email="victim@example.com")
    statuses = [client.post("/reset", {"email": host.email}, form_url="/reset").status_code for _ in range(7)]
    assert statuses[:5] == [302] * 5 and 429 in statuses[5:]
    sweep()
    assert len(smtp.to("victim@example.com")) == 3  # MAILBOX_LIMITS["reset"]: 3 an hour


# --- per mailbox ------------------------------------------------------------------------------------

def test_book_and_cancel_in_a_loop_cannot_flood_one_inbox(client, open_service, smtp, app):
    service, slot, other = open_service
    app.config["PUBLIC_FORM_LIMIT"], per_address = "1000 per minute", app.config["PUBLIC_FORM_LIMIT"]
    try:
        refusals = 0
        for n in range(10):  # the victim's address, plus-tagged to dodge the per-slot rule
            response = book(client, service, slot if n % 2 else other, f"victim+{n}@example.com")
            if response.status_code != 302:
                refusals += 1
                assert "短時間に集中しています" in response.get_data(as_text=True)
                continue
            sweep()  # the workers send at once
            booking = db.session.query(Booking).order_by(Booking.id.desc()).first()
            assert client.post(f"/c/{booking.cancel_token}").status_code == 302
            sweep()
    finally:
        app.config["PUBLIC_FORM_LIMIT"] = per_address
    sweep()
    assert refusals == 5
    received = smtp.to("victim+")
    assert len([m for m in received if "お申し込み完了" in m["Subject"]]) == 5
    assert len([m for m in received if "キャンセル受付" in m["Subject"]]) == 5  # not 10 of each


def test_plus_addressing_is_the_same_guest_for_the_one_seat_per_slot_rule(client, open_service):
    service, slot, _ = open_service
    assert book(client, service, slot, "hana@example.com").status_code == 302
    again = book(client, service, slot, "Hana+second@Example.com")
    assert again.status_code == 200 and "すでにお申し込み済み" in again.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Slot, slot.id).booked_count == 1


def test_one_guest_address_receives_at_most_the_daily_cap(app, open_service, make_booking, smtp):
    service, slot, _ = open_service
    app.config["RECIPIENT_DAILY_CAP"], cap = 3, app.config["RECIPIENT_DAILY_CAP"]
    try:
        booking = make_booking(slot, email="target@example.com")
        for _ in range(4):  # the host resends, messages … : more emails about the booking
            outbox.queue_email("booking_confirmation", to_email="target+x@example.com", booking_id=booking.id,
                               slot_id=slot.id, host_id=service.host_id)
        db.session.commit()
        sweep()
    finally:
        app.config["RECIPIENT_DAILY_CAP"] = cap
    assert len(smtp.to("target")) == 3
    dropped = db.session.query(Delivery).filter_by(status=DeliveryStatus.CANCELLED).all()
    assert len(dropped) == 2 and all("RECIPIENT_DAILY_CAP" in d.last_error for d in dropped)


# --- a name is a name ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Visit http://spam.example to claim", "ｗｗｗ．ｓｐａｍ．ｃｏｍ",
                                  "prize at win-now.com", "<b>山田</b>", "a@example.com", "x" * 41])
def test_a_guest_name_that_is_not_a_name_is_refused_and_nothing_is_lost(client, open_service, name, smtp):
    service, slot, _ = open_service
    response = book(client, service, slot, "spam-target@example.com", name=name)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "お名前" in page
    assert "spam-target@example.com" in page  # what was typed is kept
    db.session.rollback()
    assert db.session.query(Booking).count() == 0


def test_ordinary_names_pass(client, open_service):
    service, slot, _ = open_service
    for n, name in enumerate(["佐藤 一郎", "J. Smith", "Mr.Tanaka", "山田 花子（はな）", "Anne-Marie O'Neil"]):
        assert book(client, service, slot, f"ok{n}@example.com", name=name).status_code == 302, name


# --- the bot check ----------------------------------------------------------------------------------

def test_the_form_must_be_read_before_it_is_sent_once_with_the_honeypot_empty(client, app, open_service):
    service, slot, _ = open_service
    app.config["BOOKING_FORM_MIN_SECONDS"] = 3
    try:
        page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
        token = client._HIDDEN.search(page).group(2)
        data = {"slot_id": slot.id, "guest_name": "佐藤 一郎", "guest_email": "human@example.com",
                "form_token": token, "confirm": "1"}
        too_fast = client.post(f"/s/{service.public_id}", data)
        assert too_fast.status_code == 200
        assert "もう一度「この内容で申し込む」を押してください" in too_fast.get_data(as_text=True)
        clock.advance(timedelta(seconds=3))
        assert client.post(f"/s/{service.public_id}", data).status_code == 302
        replay = client.post(f"/s/{service.public_id}", {**data, "guest_email": "bot@example.com"})
        assert replay.status_code == 200  # the same rendering, sent again
        clock.advance(timedelta(seconds=10))
        filled = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "Bot",
                                                         "guest_email": "bot2@example.com",
                                                         "website": "http://spam.example", "confirm": "1"},
                             form_url=f"/s/{service.public_id}")
        assert filled.status_code == 200
        forged = client.post(f"/s/{service.public_id}", {**data, "guest_email": "bot3@example.com",
                                                         "form_token": "forged"})
        assert forged.status_code == 200
    finally:
        app.config["BOOKING_FORM_MIN_SECONDS"] = 0
    db.session.rollback()
    assert [b.guest_email for b in db.session.query(Booking)] == ["human@example.com"]


# --- a host undoes one booking ----------------------------------------------------------------------

def test_a_host_removes_one_booking_with_a_message_and_the_seat_comes_back(
        client, login, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host(name="山田 花子")
    service = make_service(host, title="陶芸", venue="in_person", capacity=2)
    slot = make_slot(service)
    bot = make_booking(slot, name="ボット", email="bot@example.com")
    keep = make_booking(slot, name="本物 太郎", email="real@example.com")
    login(host)
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert f"/bookings/{bot.id}/remove" in page and "予約を取り消す" in page
    confirm = client.get(f"/bookings/{bot.id}/remove").get_data(as_text=True)
    assert "bot@example.com" in confirm and "予約者へのメッセージ（任意）" in confirm
    done = client.post(f"/bookings/{bot.id}/remove", {"message": "重複したお申し込みのため取り消しました。"},
                       follow_redirects=True)
    assert "ボット様のご予約を取り消し" in done.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Booking, bot.id).status == BookingStatus.CANCELLED
    assert db.session.get(Booking, keep.id).status == BookingStatus.CONFIRMED
    assert db.session.get(Slot, slot.id).booked_count == 1
    run_jobs()
    [mail] = [m for m in smtp.to("bot@example.com") if m["Subject"] == "【ご予約の取り消し】陶芸"]
    assert "重複したお申し込みのため取り消しました。" in body_text(mail) and "山田 花子" in body_text(mail)


def test_a_host_cannot_remove_another_hosts_booking(client, login, make_host, make_service, make_slot,
                                                    make_booking):
    slot = make_slot(make_service(make_host(), venue="in_person"))
    theirs = make_booking(slot)
    login(make_host())
    assert client.get(f"/bookings/{theirs.id}/remove").status_code == 404
    assert client.post(f"/bookings/{theirs.id}/remove", {}, form_url="/dashboard").status_code == 404
    db.session.rollback()
    assert db.session.get(Booking, theirs.id).is_confirmed


# --- quotas --------------------------------------------------------------------------------------------

def compose(client, service, slot_ids, when=None, subject="持ち物のご案内"):
    data = {"subject": subject, "body": "筆ペンをお持ちください。", "slot_ids": [str(i) for i in slot_ids],
            "send_mode": "schedule" if when else "now", "action": "send"}
    if when:
        data["scheduled_at"] = when
    return client.post(f"/messages/new?service_id={service.id}", data)


def test_scheduled_messages_reserve_the_daily_limit_when_composed(
        client, login, app, make_host, make_service, make_slot, make_booking):
    host = make_host()
    service = make_service(host, venue="in_person", capacity=10)
    slots = [make_slot(service, starts_in=timedelta(days=d)) for d in (3, 4, 5, 6)]
    for n, slot in enumerate(slots):
        for g in range(3):
            make_booking(slot, email=f"g{n}-{g}@example.com")
    login(host)
    tomorrow = clock.to_local(clock.now() + timedelta(days=1), host.timezone).strftime("%Y-%m-%dT10:00")
    app.config["BULK_DAILY_LIMIT"], limit = 5, app.config["BULK_DAILY_LIMIT"]
    try:
        pages = [compose(client, service, [slot.id], when=tomorrow) for slot in slots]
    finally:
        app.config["BULK_DAILY_LIMIT"] = limit
    assert pages[0].status_code == 302
    for refused in pages[1:]:
        assert refused.status_code == 200 and "1日に送れるメッセージは5通まで" in refused.get_data(as_text=True)
    db.session.rollback()
    assert db.session.query(Message).count() == 1  # was 4, all sent under a limit of 5


def test_fan_out_checks_the_limit_again_and_holds_the_message(
        client, login, app, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host()
    service = make_service(host, venue="in_person", capacity=10)
    slot = make_slot(service, starts_in=timedelta(days=3))
    for g in range(2):
        make_booking(slot, email=f"early{g}@example.com")
    login(host)
    later = clock.to_local(clock.now() + timedelta(hours=2), host.timezone).strftime("%Y-%m-%dT%H:%M")
    app.config["BULK_DAILY_LIMIT"], limit = 3, app.config["BULK_DAILY_LIMIT"]
    try:
        assert compose(client, service, [slot.id], when=later).status_code == 302
        for g in range(3):  # guests keep booking after it was composed
            make_booking(slot, email=f"late{g}@example.com")
        clock.advance(timedelta(hours=3))
        from app.messages import bulk

        assert bulk.start_due_messages() == 1
    finally:
        app.config["BULK_DAILY_LIMIT"] = limit
    message = db.session.query(Message).one()
    assert message.status == MessageStatus.HELD and "1日に送れる通数を超える" in message.held_reason
    assert db.session.query(Delivery).filter(Delivery.bulk_message_id.is_not(None)).count() == 0
    run_jobs()
    sweep()
    assert any("保留" in m["Subject"] for m in smtp.to(host.email))


def test_a_hosts_own_notices_have_a_daily_budget(client, login, app, make_host, make_service, make_slot,
                                                 make_booking, smtp):
    host = make_host()
    service = make_service(host, venue="in_person", capacity=5)
    slot = make_slot(service, starts_in=timedelta(days=3))
    for g in range(3):
        make_booking(slot, email=f"g{g}@example.com")
    login(host)
    app.config["HOST_NOTICE_DAILY_LIMIT"], limit = 5, app.config["HOST_NOTICE_DAILY_LIMIT"]
    try:
        first = client.post(f"/slots/{slot.id}/move", {"starts_at": "2031-02-01T10:00"})
        second = client.post(f"/slots/{slot.id}/move", {"starts_at": "2031-02-02T10:00"})
    finally:
        app.config["HOST_NOTICE_DAILY_LIMIT"] = limit
    assert first.status_code == 302
    assert second.status_code == 200 and "1日5通まで" in second.get_data(as_text=True)
    db.session.rollback()
    moved = db.session.get(Slot, slot.id)
    assert clock.to_local(moved.starts_at, host.timezone).day == 1  # the second move did not happen
    assert db.session.query(Delivery).filter_by(kind="slot_moved").count() == 3


def test_the_host_sees_who_cancelled_after_receiving_the_url(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs):
    host = make_host()
    link_zoom(host)
    slot = make_slot(make_service(host, capacity=5), starts_in=timedelta(hours=5))  # the URL goes at once
    leaver = make_booking(slot, name="去る 人", email="leaver@example.com")
    make_booking(slot, name="残る 人", email="stayer@example.com")
    run_jobs()
    sweep()
    assert client.post(f"/c/{leaver.cancel_token}").status_code == 302
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    section = page[page.index('id="url-holders"'):]
    assert "参加URLを受け取った後にキャンセルした方（1名）" in section and "leaver@example.com" in section
    assert "stayer@example.com" not in section and "待機室" in section
    assert client.get(f"/j/{leaver.join_token}/go").status_code == 200  # no redirect to the meeting any more
