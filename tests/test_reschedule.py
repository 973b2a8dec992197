"""Guests move their own booking to another date (「日時を変更」, ``app.booking.reschedule``)."""
import re
import threading
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect

from app import clock
from app.booking import reschedule as moves
from app.extensions import db
from app.meetings import issuing
from app.models import Booking, Delivery, DeliveryStatus, MeetingStatus, Slot, SlotStatus
from app.services.slots import cancel_slot
from tests.conftest import body_html, body_text

RESCHEDULE_LINK = re.compile(r"https?://\S+/r/[\w-]+")


def seats(slot_id: int) -> int:
    db.session.rollback()
    return db.session.get(Slot, slot_id).booked_count


def slot_of(booking_id: int) -> int:
    db.session.rollback()
    return db.session.get(Booking, booking_id).slot_id


@pytest.fixture
def setup(make_host, make_service, make_slot, make_booking):
    host = make_host(name="山田 花子")
    service = make_service(host, title="オンライン英会話", capacity=2)
    old = make_slot(service, starts_in=timedelta(days=3))
    new = make_slot(service, starts_in=timedelta(days=5))
    booking = make_booking(old, name="佐藤 一郎", email="ichiro@example.com")
    return host, service, old, new, booking


# --- over HTTP ------------------------------------------------------------------------------------

def test_guest_moves_from_the_email_link_and_both_sides_are_told(client, setup, run_jobs, smtp):
    host, service, old, new, booking = setup
    old_id, new_id, token = old.id, new.id, booking.cancel_token
    run_jobs()
    [confirmation] = smtp.to("ichiro@example.com")
    link = RESCHEDULE_LINK.search(body_text(confirmation)).group(0)
    assert link.endswith(f"/r/{token}") and "日時を変更する場合はこちら:" in body_text(confirmation)
    assert f'href="{link}"' in body_html(confirmation)

    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "日時の変更" in page and f'value="{new_id}"' in page and f'value="{old_id}"' not in page
    response = client.post(f"/r/{token}", {"slot_id": new_id})
    assert response.status_code == 302 and f"/booked/{token}" in response.headers["Location"]
    assert "日時を変更しました。確認のメールをお送りしました。" in client.get(response.headers["Location"]).get_data(
        as_text=True)
    assert (slot_of(booking.id), seats(old_id), seats(new_id)) == (new_id, 0, 1)

    smtp.clear()
    run_jobs()
    [moved] = smtp.to("ichiro@example.com")
    assert moved["Subject"] == "【日時変更】オンライン英会話"
    text = body_text(moved)
    new_slot, old_slot = db.session.get(Slot, new_id), db.session.get(Slot, old_id)
    when = clock.to_local(new_slot.starts_at, "Asia/Tokyo")
    assert f"{when.year}年{when.month}月{when.day}日" in text and "変更前:" in text
    assert f"/r/{token}" in text and f"/c/{token}" in text
    # The host's notice comes at once (no window): the guest, both dates.
    [notice] = smtp.to(host.email)
    assert notice["Subject"] == "ご予約の日時が変更されました（オンライン英会話）"
    assert "佐藤 一郎" in body_text(notice) and "変更前" in body_text(notice) and "変更後" in body_text(notice)
    assert old_slot.booked_count == 0


def test_the_full_target_is_refused_and_the_booking_stays(client, setup, make_booking):
    host, service, old, new, booking = setup
    new.capacity = 1
    db.session.commit()
    make_booking(new)
    response = client.post(f"/r/{booking.cancel_token}", {"slot_id": new.id})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/r/{booking.cancel_token}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "満席" in page and "ご予約は元の日時のままです" in page
    assert (slot_of(booking.id), seats(old.id), seats(new.id)) == (old.id, 1, 1)


def test_two_guests_race_for_the_last_seat_one_wins(live_server, setup, make_booking):
    host, service, old, new, first = setup
    second = make_booking(old, name="鈴木 二郎")
    new.capacity = 1
    db.session.commit()
    ids = {"new": new.id, "old": old.id}
    sessions, tokens = [], []
    for booking in (first, second):  # two browsers, each with its page (and CSRF token) open
        session = requests.Session()
        page = session.get(f"{live_server}/r/{booking.cancel_token}").text
        tokens.append(re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1))
        sessions.append(session)
    db.session.rollback()
    barrier, results = threading.Barrier(2), [None, None]

    def move(i, booking_token):
        barrier.wait()
        response = sessions[i].post(f"{live_server}/r/{booking_token}",
                                    data={"csrf_token": tokens[i], "slot_id": ids["new"]})
        results[i] = response

    threads = [threading.Thread(target=move, args=(i, b.cancel_token)) for i, b in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    pages = [r.text for r in results]
    won = [i for i, text in enumerate(pages) if "日時を変更しました" in text]
    lost = [i for i, text in enumerate(pages) if "満席" in text and "ご予約は元の日時のままです" in text]
    assert len(won) == 1 and len(lost) == 1, [r.url for r in results]
    winner, loser = (first, second)[won[0]], (first, second)[lost[0]]
    assert slot_of(winner.id) == ids["new"] and slot_of(loser.id) == ids["old"]
    assert (seats(ids["old"]), seats(ids["new"])) == (1, 1)
    assert db.session.get(Booking, loser.id).is_confirmed


def test_two_db_sessions_racing_in_the_domain(app, setup, make_booking):
    """The same race one level down: two threads, each with its own session, call ``move_booking``."""
    host, service, old, new, first = setup
    second = make_booking(old)
    new.capacity = 1
    db.session.commit()
    ids, outcomes, barrier = [first.id, second.id], [None, None], threading.Barrier(2)
    new_id = new.id

    def move(i):
        with app.app_context():
            booking = db.session.get(Booking, ids[i])
            barrier.wait()
            try:
                moves.move_booking(booking, new_id)
                outcomes[i] = "moved"
            except moves.SlotFull:
                outcomes[i] = "full"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=move, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["full", "moved"]
    assert seats(new_id) == 1 and seats(old.id) == 1


def test_two_guests_swapping_dates_at_once_both_move(app, setup, make_booking):
    """Each move locks both dates' rows, in id order: swapping guests never deadlock (PostgreSQL)."""
    host, service, old, new, first = setup
    second = make_booking(new)
    pairs, outcomes, barrier = [(first.id, new.id), (second.id, old.id)], [None, None], threading.Barrier(2)

    def move(i):
        with app.app_context():
            booking_id, target = pairs[i]
            booking = db.session.get(Booking, booking_id)
            barrier.wait()
            try:
                moves.move_booking(booking, target)
                outcomes[i] = "moved"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=move, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["moved", "moved"]
    assert (slot_of(first.id), slot_of(second.id)) == (new.id, old.id)
    assert (seats(old.id), seats(new.id)) == (1, 1)


def test_after_the_cutoff_the_page_says_so_and_how_to_reach_the_host(client, make_host, make_service, make_slot,
                                                                     make_booking):
    host = make_host(name="山田 花子")
    host.contact_email, host.show_contact_publicly = "hanako@example.com", True
    db.session.commit()
    service = make_service(host)  # the default cutoff: 24 hours
    soon = make_slot(service, starts_in=timedelta(hours=10))
    later = make_slot(service, starts_in=timedelta(days=4))
    booking = make_booking(soon)
    page = client.get(f"/r/{booking.cancel_token}").get_data(as_text=True)
    assert "開催日時の24時間前" in page and "変更の受付は終了しました" in page
    assert "mailto:hanako@example.com" in page and "ご予約のメールに返信すると、ホストに届きます" in page
    assert f'value="{later.id}"' not in page
    client.post(f"/r/{booking.cancel_token}", {"slot_id": later.id}, form_url=f"/s/{service.public_id}")
    assert (slot_of(booking.id), seats(soon.id), seats(later.id)) == (soon.id, 1, 0)
    with pytest.raises(moves.PastCutoff):
        moves.move_booking(db.session.get(Booking, booking.id), later.id)


def test_no_cutoff_means_no_link_and_the_host_handles_changes(client, make_host, make_service, make_slot,
                                                              make_booking, run_jobs, smtp):
    host = make_host()
    service = make_service(host, title="書道")
    service.reschedule_cutoff_hours = None
    db.session.commit()
    slot, other = make_slot(service), make_slot(service, starts_in=timedelta(days=4))
    booking = make_booking(slot, email="off@example.com")
    run_jobs()
    [confirmation] = smtp.to("off@example.com")
    assert "/r/" not in body_text(confirmation) and "/r/" not in body_html(confirmation)
    assert "キャンセルはこちら:" in body_text(confirmation)
    page = client.get(f"/r/{booking.cancel_token}").get_data(as_text=True)
    assert "日時の変更をホストが承っています" in page and "ホストへの連絡方法" in page
    with pytest.raises(moves.RescheduleOff):
        moves.move_booking(booking, other.id)


def test_cancelled_booking_cancelled_or_past_date_cannot_be_moved(client, setup, make_slot, make_booking):
    host, service, old, new, booking = setup
    from app.booking.booking import cancel_booking

    cancel_booking(booking)
    db.session.commit()
    assert "キャンセル済みのため" in client.get(f"/r/{booking.cancel_token}").get_data(as_text=True)
    with pytest.raises(moves.NotMovable):
        moves.move_booking(booking, new.id)

    other = make_booking(old)
    cancel_slot(db.session.get(Slot, old.id))
    db.session.commit()
    with pytest.raises(moves.NotMovable):
        moves.move_booking(db.session.get(Booking, other.id), new.id)

    past = make_slot(service, starts_in=timedelta(days=1))
    third = make_booking(past)
    service.reschedule_cutoff_hours = 0
    db.session.commit()
    clock.travel_to(past.starts_at + timedelta(hours=2))
    assert "中止されたか、すでに終了している" in client.get(f"/r/{third.cancel_token}").get_data(as_text=True)
    with pytest.raises(moves.NotMovable):
        moves.move_booking(db.session.get(Booking, third.id), new.id)
    # … nor to a cancelled or past date.
    fourth = make_booking(new)
    cancelled = make_slot(service, starts_in=timedelta(days=6))
    cancel_slot(cancelled)
    db.session.commit()
    with pytest.raises(moves.SlotUnavailable):
        moves.move_booking(fourth, cancelled.id)
    with pytest.raises(moves.SlotUnavailable):
        moves.move_booking(db.session.get(Booking, fourth.id), past.id)
    assert slot_of(fourth.id) == new.id


def test_moving_onto_a_date_the_mailbox_already_holds_is_refused(setup, make_booking):
    host, service, old, new, booking = setup
    make_booking(new, email="ichiro+other@example.com")
    with pytest.raises(moves.AlreadyBooked):
        moves.move_booking(booking, new.id)
    assert (slot_of(booking.id), seats(old.id), seats(new.id)) == (old.id, 1, 1)


# --- Zoom -----------------------------------------------------------------------------------------

def test_zoom_old_meeting_goes_and_the_url_email_follows_the_new_date(make_host, link_zoom, zoom, make_service,
                                                                      make_slot, make_booking, run_jobs, smtp):
    host = make_host(name="山田 花子")
    link_zoom(host)
    service = make_service(host, title="ヨガ")
    old = make_slot(service, starts_in=timedelta(days=3))
    later = make_slot(service, starts_in=timedelta(days=6))
    soon = make_slot(service, starts_in=timedelta(hours=20))
    booking = make_booking(old, email="yoga@example.com")
    run_jobs()
    assert issuing.meeting_for(old.id).status == MeetingStatus.ISSUED

    moves.move_booking(booking, later.id)
    run_jobs()
    assert issuing.meeting_for(old.id).status == MeetingStatus.DELETED
    assert len(zoom.calls("/v2/meetings/", method="DELETE")) == 1
    assert issuing.meeting_for(later.id).status == MeetingStatus.ISSUED
    urls = db.session.query(Delivery).filter_by(booking_id=booking.id, kind="meeting_url").order_by(Delivery.id).all()
    assert [u.status for u in urls] == [DeliveryStatus.CANCELLED, DeliveryStatus.PENDING]
    assert clock.as_utc(urls[-1].due_at) == clock.as_utc(later.starts_at) - timedelta(hours=24)
    assert "【日時変更】ヨガ" in [m["Subject"] for m in smtp.to("yoga@example.com")]
    assert any(m["Subject"] == "ご予約の日時が変更されました（ヨガ）" for m in smtp.to(host.email))

    # Into a date within 24 hours: the URL comes at once.
    smtp.clear()
    moves.move_booking(db.session.get(Booking, booking.id), soon.id)
    run_jobs()
    subjects = [m["Subject"] for m in smtp.to("yoga@example.com")]
    assert "【参加URLのご案内】ヨガ" in subjects and "【日時変更】ヨガ" in subjects
    assert issuing.meeting_for(later.id).status == MeetingStatus.DELETED


def test_zoom_meeting_stays_while_a_guest_is_left(make_host, link_zoom, zoom, make_service, make_slot, make_booking,
                                                  run_jobs):
    host = make_host()
    link_zoom(host)
    service = make_service(host)
    old, new = make_slot(service, starts_in=timedelta(days=3)), make_slot(service, starts_in=timedelta(days=4))
    booking, stays = make_booking(old), make_booking(old)
    run_jobs()
    moves.move_booking(booking, new.id)
    run_jobs()
    assert issuing.meeting_for(old.id).status == MeetingStatus.ISSUED
    assert zoom.calls("/v2/meetings/", method="DELETE") == []
    assert seats(old.id) == 1 and stays.is_confirmed


# --- in the browser -------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_browser_guest_reschedules_from_the_confirmation_email(page, live_server, setup, run_jobs, smtp, width):
    page.set_viewport_size({"width": width, "height": 900})
    host, service, old, new, booking = setup
    new_when = clock.to_local(new.starts_at, "Asia/Tokyo")
    run_jobs()
    [confirmation] = smtp.to("ichiro@example.com")
    page.goto(RESCHEDULE_LINK.search(body_text(confirmation)).group(0))
    expect(page.get_by_role("heading", name="日時の変更")).to_be_visible()
    page.get_by_label(re.compile(f"{new_when.year}年{new_when.month}月{new_when.day}日")).check()
    page.get_by_role("button", name="この日時に変更する").click()
    expect(page.get_by_text("日時を変更しました。確認のメールをお送りしました。")).to_be_visible()
    expect(page.locator(".when").first).to_contain_text(f"{new_when.month}月{new_when.day}日")
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    smtp.clear()
    run_jobs()
    moved = next(m for m in smtp.wait_for(2) if "ichiro@example.com" in str(m["To"]))
    assert moved["Subject"] == "【日時変更】オンライン英会話"
    assert f"{new_when.year}年{new_when.month}月{new_when.day}日" in body_text(moved)


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_browser_after_the_cutoff_the_guest_is_told_whom_to_contact(page, live_server, make_host, make_service,
                                                                    make_slot, make_booking, width):
    page.set_viewport_size({"width": width, "height": 900})
    host = make_host(name="山田 花子")
    host.contact_email, host.show_contact_publicly = "hanako@example.com", True
    db.session.commit()
    service = make_service(host)
    service.reschedule_cutoff_hours = 48
    db.session.commit()
    booking = make_booking(make_slot(service, starts_in=timedelta(hours=30)))
    make_slot(service, starts_in=timedelta(days=5))
    page.goto(f"/r/{booking.cancel_token}")
    expect(page.get_by_text("日時の変更は、開催日時の48時間前")).to_be_visible()
    expect(page.get_by_text("変更の受付は終了しました", exact=False)).to_be_visible()
    expect(page.get_by_role("link", name="hanako@example.com")).to_be_visible()
    expect(page.get_by_role("button", name="この日時に変更する")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
