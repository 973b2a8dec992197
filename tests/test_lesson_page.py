"""The guest's lesson page (``/j/<token>``) in each of its states, with the clock moved, and
「参加する」 (``/j/<token>/go``), which alone resolves the current URL and notes the first press."""
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.mail import outbox
from app.meetings import issuing, timing
from app.models import Booking, MeetingStatus
from app.services.slots import cancel_slot


def words(response) -> str:
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def go_href(html: str) -> bool:
    return bool(re.search(r'<a [^>]*href="/j/[^"]+/go"', html))


@pytest.fixture
def zoom_lesson(make_host, link_zoom, make_service, make_slot, make_booking, run_jobs):
    """A Basic Zoom host's 60-minute group lesson in two days, booked and its meeting issued."""
    host = make_host(name="山田 花子")
    link_zoom(host, "basic@zoom.test")
    service = make_service(host, title="英会話グループ", host_notes="今日の復習: https://example.com/notes")
    slot = make_slot(service, starts_in=timedelta(days=2))
    booking = make_booking(slot)
    run_jobs()
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED
    return booking, meeting


def opened_at(booking):
    db.session.rollback()
    return db.session.get(Booking, booking.id).join_opened_at


def test_the_page_through_the_lesson(client, zoom_lesson):
    booking, meeting = zoom_lesson
    slot, page = booking.slot, f"/j/{booking.join_token}"
    # Long before: the date, the tool, a countdown; the button is there but disabled, and says when it opens.
    clock.travel_to(slot.starts_at - timedelta(hours=2, minutes=15))
    response = client.get(page)
    text, html = words(response), response.get_data(as_text=True)
    assert response.status_code == 200 and "英会話グループ" in text and "参加方法: Zoom" in text
    assert "開始まであと2時間15分" in text
    assert 'aria-disabled="true"' in html and not go_href(html) and meeting.join_url not in html
    assert "開始10分前（" in text and "から押せるようになります" in text
    # The Basic plan's 40-minute cut: wait for the host, press 参加する again.
    assert "開始から40分で一度終了します" in text and "もう一度「参加する」を押してください" in text
    assert "このレッスンは終了しました" not in text
    clock.travel_to(slot.starts_at - timedelta(days=1, hours=3))
    assert "開始まであと1日3時間" in words(client.get(page))
    # Within the 10 minutes: active.
    clock.travel_to(slot.starts_at - timedelta(minutes=10))
    html = client.get(page).get_data(as_text=True)
    assert go_href(html) and 'aria-disabled' not in html and "開始まであと10分" in words(client.get(page))
    # During the lesson: active.
    clock.travel_to(slot.starts_at + timedelta(minutes=30))
    response = client.get(page)
    assert go_href(response.get_data(as_text=True)) and "レッスン中です" in words(response)
    # After the end: 終了 and the host's notes, no button.
    clock.travel_to(slot.ends_at)
    response = client.get(page)
    text, html = words(response), response.get_data(as_text=True)
    assert "このレッスンは終了しました" in text and "今日の復習" in text and 'href="https://example.com/notes"' in html
    assert "参加する" not in text and "開始まで" not in text
    assert opened_at(booking) is None  # none of those GETs changed anything


def test_the_button_opens_at_the_hosts_setting(client, zoom_lesson):
    booking, _ = zoom_lesson
    booking.slot.service.join_opens_minutes = 30
    db.session.commit()
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=31))
    text = words(client.get(f"/j/{booking.join_token}"))
    assert "開始30分前（" in text
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=30))
    assert go_href(client.get(f"/j/{booking.join_token}").get_data(as_text=True))


def test_a_scanner_opening_the_page_changes_nothing_and_go_records_the_first_press(client, zoom_lesson):
    booking, meeting = zoom_lesson
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=5))
    for _ in range(3):
        assert client.get(f"/j/{booking.join_token}").status_code == 200
    assert opened_at(booking) is None
    first = client.get(f"/j/{booking.join_token}/go")
    assert first.status_code == 302 and first.headers["Location"] == meeting.join_url
    pressed = opened_at(booking)
    assert pressed is not None
    clock.advance(timedelta(minutes=3))
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == meeting.join_url
    assert opened_at(booking) == pressed  # the first press only


def test_go_follows_a_reissued_meeting(client, zoom_lesson, zoom):
    booking, first = zoom_lesson
    first_url = first.join_url
    zoom.delete_meeting_out_of_band(int(first.external_id))
    clock.travel_to(booking.slot.starts_at - timing.URL_LEAD)
    outbox.send_due()
    db.session.rollback()
    again = issuing.meeting_for(booking.slot_id)
    assert again.join_url != first_url
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=1))
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == again.join_url


def test_cancelled_booking_and_cancelled_date(client, zoom_lesson, make_booking):
    booking, meeting = zoom_lesson
    other = make_booking(booking.slot, email="other@example.com")
    bookings.cancel_booking(booking)
    db.session.commit()
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=5))
    for url in (f"/j/{booking.join_token}", f"/j/{booking.join_token}/go"):
        response = client.get(url)
        text, html = words(response), response.get_data(as_text=True)
        assert response.status_code == 200 and "キャンセルされています" in text and "別の日時を予約する" in text, url
        assert not go_href(html) and meeting.join_url not in html
    cancel_slot(db.session.get(type(booking.slot), booking.slot_id))
    db.session.commit()
    response = client.get(f"/j/{other.join_token}/go")
    assert response.status_code == 200 and "キャンセルされています" in words(response)
    assert opened_at(booking) is None and opened_at(other) is None


def test_no_meeting_yet_says_it_is_being_prepared(client, make_host, link_zoom, make_service, make_slot,
                                                  make_booking):
    host = make_host()
    link_zoom(host)
    booking = make_booking(make_slot(make_service(host), starts_in=timedelta(days=3)))  # its issue job not run
    response = client.get(f"/j/{booking.join_token}")
    text = words(response)
    assert "参加URLはまだ準備中です。開始24時間前までにメールでお知らせします。" in text
    assert "開始まであと3日" in text and not go_href(response.get_data(as_text=True))
    go = client.get(f"/j/{booking.join_token}/go")
    assert go.status_code == 200 and "準備中" in words(go) and opened_at(booking) is None
    clock.travel_to(booking.slot.starts_at - timedelta(hours=1))
    assert "参加URLはただいま準備中です" in words(client.get(f"/j/{booking.join_token}"))


def test_withdrawn_tool_says_so(client, make_host, make_service, make_slot, make_booking):
    host = make_host()  # never linked Zoom
    booking = make_booking(make_slot(make_service(host), starts_in=timedelta(hours=1)))
    assert "ホストがZoomでのオンライン開催を取りやめたため" in words(client.get(f"/j/{booking.join_token}"))


def test_fixed_url_service(client, make_host, make_service, make_slot, make_booking):
    host = make_host()
    service = make_service(host, venue="fixed_url", meeting_url="https://whereby.example/room-7")
    booking = make_booking(make_slot(service, starts_in=timedelta(hours=3)))
    response = client.get(f"/j/{booking.join_token}")
    html = response.get_data(as_text=True)
    assert "開始まであと3時間" in words(response) and 'aria-disabled="true"' in html
    assert "whereby.example" not in html and "無料プラン" not in html
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=9))
    assert go_href(client.get(f"/j/{booking.join_token}").get_data(as_text=True))
    go = client.get(f"/j/{booking.join_token}/go")
    assert go.status_code == 302 and go.headers["Location"] == "https://whereby.example/room-7"
    assert opened_at(booking) is not None


def test_google_meet_group_lesson_on_a_free_account(client, make_host, link_google, make_service, make_slot,
                                                    make_booking, run_jobs):
    host = make_host()
    link_google(host)
    service = make_service(host, venue="google_meet", duration_minutes=90, capacity=4)
    booking = make_booking(make_slot(service, starts_in=timedelta(days=2)))
    run_jobs()
    meeting = issuing.meeting_for(booking.slot_id)
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=2))
    text = words(client.get(f"/j/{booking.join_token}"))
    assert "参加方法: Google Meet" in text and "開始まであと2分" in text
    assert "Google Meetの無料プランでは、レッスンが開始から60分で一度終了します" in text
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == meeting.join_url


def test_the_lesson_page_on_a_phone(page, live_server, zoom_lesson):
    booking, meeting = zoom_lesson
    page.set_viewport_size({"width": 375, "height": 740})
    clock.travel_to(booking.slot.starts_at - timedelta(hours=2, minutes=15))
    page.goto(f"{live_server}/j/{booking.join_token}")
    expect(page.get_by_role("heading", name="英会話グループ")).to_be_visible()
    expect(page.locator("#countdown")).to_have_text(re.compile(r"開始まであと2時間1[45]分"))
    expect(page.locator(".lesson-join")).to_have_attribute("aria-disabled", "true")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    clock.travel_to(booking.slot.starts_at - timedelta(minutes=5))
    page.reload()
    join = page.get_by_role("link", name="参加する")
    expect(join).to_be_visible()
    box = join.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["height"] >= 44
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert join.get_attribute("href") == f"/j/{booking.join_token}/go"
    response = page.request.get(f"{live_server}/j/{booking.join_token}/go", max_redirects=0)
    assert response.status == 302 and response.headers["location"] == meeting.join_url
