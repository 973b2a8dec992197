"""Guest booking: the public page, seats, the confirmation email, cancelling by link."""
import threading
from datetime import timedelta

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Slot, SlotStatus
from tests.conftest import body_html, body_text


def test_guest_books_and_receives_confirmation_with_notes_and_jst_time(
        client, make_host, make_service, make_slot, run_jobs, smtp, app):
    host = make_host(name="山田 花子")
    service = make_service(host, title="書道レッスン", host_notes="筆ペンをご用意ください。\nhttps://meet.example.com/x")
    slot = make_slot(service)
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert "書道レッスン" in page and "残り3席" in page

    response = client.post(f"/s/{service.public_id}",
                           {"slot_id": slot.id, "guest_name": "佐藤 一郎", "guest_email": "Ichiro@Example.com",
                            "confirm": "1"})
    assert response.status_code == 302
    run_jobs()

    [message] = smtp.wait_for(1)
    assert "ichiro@example.com" in str(message["To"])
    assert message["Subject"] == "【お申し込み完了】書道レッスン"
    text = body_text(message)
    from app.clock import format_datetime_local
    assert format_datetime_local(slot.starts_at, "Asia/Tokyo") in text  # e.g. 2026年11月27日(金) 10:00
    assert "筆ペンをご用意ください。" in text
    html = body_html(message)
    assert '<a href="https://meet.example.com/x"' in html
    delivery = db.session.query(Delivery).filter_by(kind="booking_confirmation").one()
    assert delivery.status == DeliveryStatus.SENT and delivery.sent_at is not None


def test_same_email_cannot_book_the_same_slot_twice(client, make_host, make_service, make_slot):
    service = make_service(make_host())
    slot = make_slot(service)
    data = {"slot_id": slot.id, "guest_name": "佐藤", "guest_email": "sato@example.com", "confirm": "1"}
    client.post(f"/s/{service.public_id}", data)
    again = client.post(f"/s/{service.public_id}", {**data, "guest_email": " SATO@example.com "})
    assert again.status_code == 200
    assert "すでにお申し込み済み" in again.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Slot, slot.id).booked_count == 1
    assert db.session.query(Booking).count() == 1


def test_invalid_email_keeps_what_was_typed(client, make_host, make_service, make_slot):
    service = make_service(make_host())
    slot = make_slot(service)
    response = client.post(f"/s/{service.public_id}",
                           {"slot_id": slot.id, "guest_name": "佐藤 一郎", "guest_email": "not-an-email", "confirm": "1"})
    page = response.get_data(as_text=True)
    assert "メールアドレスの形式が正しくありません。" in page
    assert 'value="佐藤 一郎"' in page and 'value="not-an-email"' in page
    assert db.session.query(Booking).count() == 0


def test_a_non_ascii_mailbox_is_refused_and_an_idn_domain_is_mailed_in_ascii(
        client, make_host, make_service, make_slot, run_jobs, smtp):
    """Few providers relay SMTPUTF8, so the form asks for an ASCII mailbox; a Japanese domain is fine."""
    service = make_service(make_host())
    slot = make_slot(service)
    page = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎", "confirm": "1",
                                                    "guest_email": "一郎@example.com"}).get_data(as_text=True)
    assert "メールアドレスの形式が正しくありません。" in page and db.session.query(Booking).count() == 0

    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                        "guest_email": "ichiro@例え.jp", "confirm": "1"})
    assert response.status_code == 302
    run_jobs()
    [message] = smtp.wait_for(1)
    assert smtp.envelopes[0][1] == ["ichiro@xn--r8jz45g.jp"]
    assert message["To"].addresses[0].addr_spec == "ichiro@xn--r8jz45g.jp"


def test_racing_guests_for_the_last_seat_exactly_one_wins(app, make_host, make_service, make_slot):
    service = make_service(make_host(), capacity=1)
    slot = make_slot(service)
    service_id, slot_id = service.id, slot.id
    barrier = threading.Barrier(8)
    outcomes = []

    def guest(n):
        with app.app_context():
            svc = db.session.get(type(service), service_id)
            barrier.wait()
            try:
                bookings.book(svc, slot_id, f"guest {n}", f"g{n}@example.com")
                outcomes.append("booked")
            except bookings.SlotFull:
                outcomes.append("full")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=guest, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["booked"] + ["full"] * 7
    db.session.rollback()
    assert db.session.get(Slot, slot_id).booked_count == 1
    assert db.session.query(Booking).count() == 1


def test_past_or_full_slots_are_refused(client, make_host, make_service, make_slot, make_booking):
    host = make_host()
    service = make_service(host, capacity=1)
    full = make_slot(service)
    make_booking(full)
    refused = {
        "full": (full, "満席"),
        "past": (make_slot(service, starts_in=timedelta(days=3), starts_at=clock.now() - timedelta(minutes=1)),
                 "受付を終了しました"),  # it began a minute ago
        "cancelled": (make_slot(service, starts_in=timedelta(days=4), status=SlotStatus.CANCELLED),
                      "受付を終了しました"),
        # Open, with seats, but another service's (the same host's, and another host's): not bookable here.
        "same host's other service": (make_slot(make_service(host, capacity=5)), "受付を終了しました"),
        "another host's service": (make_slot(make_service(make_host(), capacity=5)), "受付を終了しました"),
    }
    for case, (slot, message) in refused.items():
        response = client.post(f"/s/{service.public_id}",
                               {"slot_id": slot.id, "guest_name": "後藤", "guest_email": "goto@example.com",
                                "confirm": "1"})
        assert response.status_code == 200 and message in response.get_data(as_text=True), case
    assert client.post(f"/s/{service.public_id}", {"slot_id": 999_999, "guest_name": "後藤", "confirm": "1",
                                                   "guest_email": "goto@example.com"}).status_code == 200
    db.session.rollback()
    assert db.session.query(Booking).filter_by(guest_email="goto@example.com").count() == 0
    assert db.session.query(Delivery).filter_by(to_email="goto@example.com").count() == 0
    assert {case: db.session.get(Slot, slot.id).booked_count for case, (slot, _) in refused.items()} == {
        "full": 1, "past": 0, "cancelled": 0, "same host's other service": 0, "another host's service": 0}


def test_guest_cancels_from_the_email_link(client, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    service = make_service(make_host())
    slot = make_slot(service)
    booking = make_booking(slot, email="kim@example.com")
    run_jobs()
    [confirmation] = smtp.wait_for(1)
    cancel_url = f"/c/{booking.cancel_token}"
    assert cancel_url in body_text(confirmation)

    # A GET (a mail scanner, say) changes nothing.
    assert "キャンセルしますか" in client.get(cancel_url).get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.CONFIRMED

    client.post(cancel_url)
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == BookingStatus.CANCELLED
    assert db.session.get(Slot, slot.id).booked_count == 0
    run_jobs()
    messages = smtp.wait_for(2)
    assert messages[1]["Subject"].startswith("【キャンセル受付】")


def test_unknown_public_id_is_404(client):
    assert client.get("/s/does-not-exist").status_code == 404


def test_slot_in_the_past_is_not_listed(client, make_host, make_service, make_slot):
    service = make_service(make_host())
    slot = make_slot(service, starts_in=timedelta(hours=1))
    from app import clock
    clock.advance(timedelta(hours=2))
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert f'value="{slot.id}"' not in page
    assert "現在申し込める開催日時はありません" in page


def test_header_injection_in_guest_name_is_refused(client, make_host, make_service, make_slot):
    service = make_service(make_host())
    slot = make_slot(service)
    response = client.post(f"/s/{service.public_id}", {
        "slot_id": slot.id, "guest_name": "太郎\r\nBcc: victim@example.com", "guest_email": "t@example.com",
        "confirm": "1"})
    assert "改行や制御文字は使えません" in response.get_data(as_text=True)
    assert db.session.query(Booking).count() == 0


def test_a_slot_keeps_when_its_earliest_booking_was_made(make_host, make_service, make_slot, make_booking):
    slot = make_slot(make_service(make_host()))
    assert slot.first_booked_at is None
    first = make_booking(slot)
    clock.advance(timedelta(hours=1))
    bookings.cancel_booking(first)
    db.session.commit()
    make_booking(slot)
    db.session.refresh(slot)
    assert slot.first_booked_at == first.created_at  # a later booking, or a cancellation, leaves it
    clock.travel_to(first.created_at - timedelta(minutes=5))  # a clock stepped back
    earlier = make_booking(slot)
    db.session.refresh(slot)
    assert slot.first_booked_at == earlier.created_at < first.created_at
