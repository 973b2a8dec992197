"""Host notices: 「新しいご予約がありました」 and 「ご予約がキャンセルされました」 reach the host's inbox
through the outbox, RQ and real SMTP; coalesced per date, or one digest an hour; as the host chose."""
import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.models import Booking, Delivery, DeliveryStatus, User
from app.notices import notices
from tests.conftest import body_html, body_text
from worker import enqueue_sweeps_if_due

HOST = "hanako@example.com"
#: Past the end of the current notice window: the notice is due then.
PAST_WINDOW = notices.NOTICE_WINDOW + notices.NOTICE_SETTLE


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    """A moment (UTC) on a fixed day: windows and hours line up the same way on every run."""
    return datetime(2030, 6, 3, hh, mm, ss, tzinfo=timezone.utc)


def sweep(run_jobs) -> None:
    """What the scheduler does when rows fall due: enqueue the outbox sweep; the worker runs it."""
    enqueue_sweeps_if_due()
    run_jobs()


def host_mail(smtp, subject_start: str = "") -> list:
    return [m for m in smtp.to(HOST) if str(m["Subject"]).startswith(subject_start)]


def set_host(host, **settings) -> None:
    for name, value in settings.items():
        setattr(host, name, value)
    db.session.commit()


@pytest.fixture
def setup(make_host, make_service, make_slot):
    """A host in Japan with an in-person class of 30 seats and one date, at 10:00 JST on a fixed day."""
    clock.travel_to(at(1, 0, 5))

    def build(**settings):
        host = make_host(email=HOST, name="山田 花子")
        set_host(host, **settings)
        service = make_service(host, title="陶芸教室", capacity=30, venue="in_person", venue_address="渋谷区神南1-2-3")
        slot = make_slot(service, starts_in=timedelta(days=3))
        return host, service, slot

    return build


def test_a_booking_reaches_the_hosts_inbox(setup, make_booking, run_jobs, smtp, live_server):
    host, service, slot = setup()
    make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")
    run_jobs()
    smtp.wait_for(1)  # the guest's confirmation goes at once …
    assert host_mail(smtp) == []  # … the host's notice waits for the window's other bookings

    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    [notice] = host_mail(smtp)
    assert notice["Subject"] == "新しいご予約がありました（陶芸教室）"
    text = body_text(notice)
    assert "佐藤 一郎 <ichiro@example.com>" in text
    assert "陶芸教室" in text
    assert clock.format_range_local(slot.starts_at, slot.ends_at, "Asia/Tokyo") in text  # host's zone (JST)
    assert "現在の残り席数: 29席（定員30名）" in text
    assert f"{live_server}/slots/{slot.id}" in text
    assert f'href="{live_server}/slots/{slot.id}"' in body_html(notice)
    row = db.session.query(Delivery).filter_by(kind=notices.BOOKING_NOTICE).one()
    assert row.status == DeliveryStatus.SENT and row.booking_id is None and row.host_id == host.id


def test_a_burst_of_20_bookings_in_a_minute_is_a_handful_of_emails(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup()
    # The worst case: the minute straddles a window's end (01:01:30 → 01:02:27).
    clock.travel_to(at(1, 1, 30))
    for n in range(20):
        make_booking(slot, name=f"予約者{n:02d}", email=f"guest{n:02d}@example.com")
        clock.advance(timedelta(seconds=3))
    run_jobs()
    for _ in range(4):  # past every window the burst touched, sweeping as the scheduler does
        clock.advance(notices.NOTICE_WINDOW)
        sweep(run_jobs)
    smtp.wait_for(22)
    notices_sent = host_mail(smtp)
    print(f"\n20 bookings in one minute → {len(notices_sent)} host emails "
          f"({len(smtp.messages) - len(notices_sent)} guest confirmations)")
    assert len(notices_sent) == 2
    listed = re.findall(r"予約者(\d\d) <guest\d\d@example.com>", "".join(body_text(m) for m in notices_sent))
    assert sorted(listed) == [f"{n:02d}" for n in range(20)]  # every booking, each in one email
    assert "現在の残り席数: 10席（定員30名）" in body_text(notices_sent[-1])


def test_a_burst_inside_one_window_is_one_email(setup, make_slot, make_booking, run_jobs, smtp):
    host, service, slot = setup()
    second_slot = make_slot(service, starts_in=timedelta(days=10))
    clock.travel_to(at(1, 0, 10))
    for n in range(10):
        make_booking(slot, email=f"a{n}@example.com")
        make_booking(second_slot, email=f"b{n}@example.com")
        clock.advance(timedelta(seconds=5))
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    smtp.wait_for(22)
    assert len(host_mail(smtp)) == 2  # one per date


def test_off_means_nothing(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup(notify_bookings=False, notify_cancellations=False)
    booking = make_booking(slot, email="kim@example.com")
    bookings.cancel_booking(db.session.get(Booking, booking.id))
    db.session.commit()
    assert db.session.query(Delivery).filter(Delivery.to_email == HOST).count() == 0  # nothing planned
    clock.advance(timedelta(hours=2))
    sweep(run_jobs)
    smtp.wait_for(1)  # the guest's cancellation email (the confirmation was dropped with the booking)
    assert host_mail(smtp) == []


def test_turning_notices_off_stops_pending_ones(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup()
    make_booking(slot, email="kim@example.com")
    set_host(db.session.get(User, host.id), notify_bookings=False)
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    smtp.wait_for(1)
    assert host_mail(smtp) == []
    row = db.session.query(Delivery).filter_by(kind=notices.BOOKING_NOTICE).one()
    assert row.status == DeliveryStatus.CANCELLED and "turned booking notices off" in row.last_error


def test_a_closed_account_gets_nothing(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup()
    make_booking(slot, email="kim@example.com")  # planned while the account was open
    set_host(db.session.get(User, host.id), deleted_at=clock.now())
    make_booking(slot, email="lee@example.com")  # not planned
    assert db.session.query(Delivery).filter(Delivery.to_email == HOST).count() == 1
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    smtp.wait_for(2)
    assert host_mail(smtp) == []
    assert db.session.query(Delivery).filter_by(kind=notices.BOOKING_NOTICE).one().status == DeliveryStatus.CANCELLED


def test_a_guests_cancellation_is_told_the_hosts_own_removal_is_not(setup, make_booking, run_jobs, smtp, client):
    host, service, slot = setup()
    kim = make_booking(slot, name="金 美羅", email="kim@example.com")
    lee = make_booking(slot, name="李 花", email="lee@example.com")
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    [booked] = host_mail(smtp)
    assert "金 美羅" in body_text(booked) and "李 花" in body_text(booked)

    clock.travel_to(at(2, 0, 5))
    client.post(f"/c/{kim.cancel_token}")  # the guest cancels from the link of their email
    db.session.rollback()
    bookings.cancel_booking(db.session.get(Booking, lee.id), by_host=True)  # the host removes the other
    db.session.commit()
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 2)
    [cancelled] = host_mail(smtp, "ご予約がキャンセルされました")
    assert cancelled["Subject"] == "ご予約がキャンセルされました（陶芸教室）"
    text = body_text(cancelled)
    assert "金 美羅 <kim@example.com>: 2030年6月3日(月) 11:00にキャンセル" in text  # when, in JST
    assert "キャンセルされたお席は空席に戻りました" in text
    assert "現在の残り席数: 30席（定員30名）" in text
    assert "李 花" not in text  # the host's own removal is not news to the host
    assert len(host_mail(smtp)) == 2
    assert db.session.query(Delivery).filter_by(kind=notices.CANCELLATION_NOTICE).count() == 1


def test_a_date_the_host_cancels_is_not_told_as_guests_cancellations(setup, make_booking, run_jobs, smtp):
    from app.services.slots import cancel_slot

    host, service, slot = setup()
    kim = make_booking(slot, name="金 美羅", email="kim@example.com")
    make_booking(slot, name="李 花", email="lee@example.com")
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    bookings.cancel_booking(db.session.get(Booking, kim.id))  # the guest cancels …
    db.session.commit()
    cancel_slot(db.session.get(type(slot), slot.id))  # … and the host cancels the whole date
    db.session.commit()
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    assert [m["Subject"] for m in host_mail(smtp)] == ["新しいご予約がありました（陶芸教室）"]
    row = db.session.query(Delivery).filter_by(kind=notices.CANCELLATION_NOTICE).one()
    assert row.status == DeliveryStatus.CANCELLED and "cancelled the date" in row.last_error


def test_digest_is_one_email_an_hour_listing_each_booking_and_cancellation(
        setup, make_service, make_slot, make_booking, run_jobs, smtp):
    host, service, slot = setup(notify_digest=True)
    tea = make_service(host, title="茶道体験", capacity=5, venue="in_person")
    tea_slot = make_slot(tea, starts_in=timedelta(days=5))
    clock.travel_to(at(1, 5))  # 10:05 JST
    make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")
    clock.travel_to(at(1, 20))
    make_booking(tea_slot, name="鈴木 花", email="hana@example.com")
    gone = make_booking(slot, name="田中 次郎", email="jiro@example.com")
    clock.travel_to(at(1, 40))
    bookings.cancel_booking(db.session.get(Booking, gone.id))
    removed = make_booking(tea_slot, name="迷惑 太郎", email="spam@example.com")
    bookings.cancel_booking(db.session.get(Booking, removed.id), by_host=True)
    db.session.commit()
    run_jobs()
    clock.travel_to(at(1, 59, 59))
    sweep(run_jobs)
    assert host_mail(smtp) == []  # nothing before the hour ends

    clock.travel_to(at(2, 0, 30))
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    [digest] = host_mail(smtp)
    assert digest["Subject"] == "ご予約とキャンセルのまとめ（2030年6月3日(月) 10:00〜11:00）"
    text = body_text(digest)
    assert "新しいご予約: 4件 / キャンセル: 1件" in text
    # grouped by service, then date; each booking and cancellation listed with its time (JST)
    assert text.index("■ 茶道体験") < text.index("■ 陶芸教室")
    assert "・ご予約: 佐藤 一郎 <ichiro@example.com> 10:05" in text
    assert "・ご予約: 鈴木 花 <hana@example.com> 10:20" in text
    assert "・キャンセル: 田中 次郎 <jiro@example.com> 10:40" in text
    assert "迷惑 太郎 <spam@example.com> 10:40（その後キャンセルされました）" in text  # booked, then removed
    assert "・キャンセル: 迷惑 太郎" not in text
    assert text.count("/slots/") == 2
    assert db.session.query(Delivery).filter_by(kind=notices.DIGEST).count() == 1

    # The next hour's events make the next hour's digest, and only that.
    clock.travel_to(at(2, 10))
    make_booking(tea_slot, name="高橋 三郎", email="saburo@example.com")
    clock.travel_to(at(3, 0, 30))
    sweep(run_jobs)
    wait_for_host(smtp, 2)
    later = body_text(host_mail(smtp)[1])
    assert "高橋 三郎" in later and "佐藤 一郎" not in later


def test_switching_to_the_digest_within_the_hour_tells_nothing_twice(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup()
    make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")  # 10:00 JST, told at once
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    set_host(db.session.get(User, host.id), notify_digest=True)
    clock.travel_to(at(1, 10))
    make_booking(slot, name="鈴木 花", email="hana@example.com")
    clock.travel_to(at(2, 0, 30))
    sweep(run_jobs)
    wait_for_host(smtp, 2)
    digest = body_text(host_mail(smtp)[1])
    assert "鈴木 花" in digest and "佐藤 一郎" not in digest
    assert "新しいご予約: 1件 / キャンセル: 0件" in digest


def test_english_host_outside_japan_reads_their_own_zone(setup, make_booking, run_jobs, smtp):
    host, service, slot = setup(locale="en", timezone="America/Los_Angeles")
    make_booking(slot, name="Ichiro Sato", email="ichiro@example.com")
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    text = body_text(host_mail(smtp)[0])
    assert clock.format_range_local(slot.starts_at, slot.ends_at, "America/Los_Angeles", "en") in text
    assert clock.zone_label("America/Los_Angeles", "en") in text


def wait_for_host(smtp, count: int) -> None:
    from tests.conftest import wait_until

    wait_until(lambda: len(host_mail(smtp)) >= count)


@pytest.mark.browser
def test_guest_books_on_the_public_page_and_the_host_is_told(page, live_server, setup, run_jobs, smtp):
    host, service, slot = setup()
    clock.reset()  # the browser's page and the worker share the real clock from here
    page.goto(f"/s/{service.public_id}")
    page.get_by_label(re.compile(re.escape(clock.format_date_local(slot.starts_at)))).check()
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro@example.com")
    page.get_by_role("button", name="申し込み内容を確認する").click()
    page.get_by_role("button", name="この内容で申し込む").click()
    expect(page.get_by_text("お申し込みが完了しました")).to_be_visible()

    run_jobs()
    smtp.wait_for(1)
    clock.advance(PAST_WINDOW)
    sweep(run_jobs)
    wait_for_host(smtp, 1)
    [notice] = host_mail(smtp)
    assert notice["Subject"] == "新しいご予約がありました（陶芸教室）"
    assert "佐藤 一郎 <ichiro@example.com>" in body_text(notice)

    # The host follows the link to the slot's page and sees the guest.
    slot_url = re.search(r"https?://\S+/slots/\d+", body_text(notice)).group(0)
    page.goto(slot_url)
    page.get_by_label("メールアドレス").fill(HOST)
    page.get_by_label("パスワード").fill("correct-horse-42")
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_text("佐藤 一郎").first).to_be_visible()
