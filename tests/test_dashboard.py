"""The host dashboard: today / this week / later with counts, what needs attention with its fix one
tap away, 「ホストとして開始」, the month calendar and a new host's checklist (fast tests, then the browser)."""
import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from app import clock
from app.extensions import db
from app.models import Delivery, DeliveryStatus, LinkStatus, ZoomConnection
from tests.factories import PASSWORD
from tests.test_query_counts import count_queries, host_with_data  # noqa: F401 (fixtures)

#: 10:00 in Tokyo on a Thursday.
MORNING = datetime(2030, 6, 20, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def busy_today(client, make_host, make_service, make_slot, make_booking, link_zoom, zoom, run_jobs, smtp):
    """A Zoom host at 10:00 JST with a lesson at 12:00 today (two guests, URL emails sent, one
    then failed), one tomorrow and one next month; returns (host, today's slot, failed booking)."""
    clock.travel_to(MORNING)
    host = make_host(name="山田 花子")
    host.bio = "書道を教えています。"
    db.session.commit()
    link_zoom(host)
    service = make_service(host, title="書道教室", capacity=5)
    today = make_slot(service, starts_in=timedelta(hours=2))
    ok, bad = make_booking(today, "佐藤 一郎", "ichiro@example.com"), make_booking(today, "鈴木 次郎", "jiro@example.com")
    make_booking(make_slot(service, starts_in=timedelta(days=1)), "田中", "tanaka@example.com")
    make_slot(service, starts_in=timedelta(days=20))
    run_jobs()
    failed = db.session.query(Delivery).filter_by(booking_id=bad.id, kind="meeting_url").one()
    failed.status, failed.last_error = DeliveryStatus.FAILED, "(550, b'5.1.1 no such user')"
    ok.join_opened_at = clock.now()  # already on the lesson page: not 「まだ参加URLを開いていません」
    db.session.commit()
    return host, today, bad


def text(response) -> str:
    return response.get_data(as_text=True)


def test_today_lists_the_lesson_with_the_start_button_the_counts_and_the_failed_email_on_top(client, busy_today):
    host, today, bad = busy_today
    page = text(client.get("/dashboard"))
    assert "今日 1件" in page and "今週 2件" in page and "今月の予約 3名" in page
    assert f'href="/slots/{today.id}/zoom/start"' in page and "ホストとして開始" in page
    assert page.index('id="attention"') < page.index('id="today"')
    assert f'name="booking_id" value="{bad.id}"' in page and "URLを再送" in page
    assert "送信済み" in page and "送信失敗" in page  # each guest's URL email
    assert "はじめに" not in page  # the checklist is done

    done = client.post(f"/slots/{today.id}/resend-url", {"booking_id": bad.id}, form_url="/dashboard")
    assert done.status_code == 302
    assert 'id="attention"' not in text(client.get("/dashboard"))


def test_a_link_needing_relinking_sends_the_host_to_the_settings_page(client, busy_today):
    host, *_ = busy_today
    link = db.session.query(ZoomConnection).filter_by(host_id=host.id).one()
    link.status = LinkStatus.NEEDS_RELINK
    db.session.commit()
    page = text(client.get("/dashboard"))
    assert 'id="attention-link-zoom"' in page and 'href="/settings/zoom">再連携する' in page


def test_today_is_the_hosts_local_day(client, login, make_host, make_service, make_slot):
    clock.travel_to(datetime(2030, 6, 20, 6, 0, tzinfo=timezone.utc))  # 23:00 on the 19th in Los Angeles
    host = make_host()
    host.timezone = "America/Los_Angeles"
    db.session.commit()
    service = make_service(host, venue="manual_url")
    make_slot(service, starts_in=timedelta(minutes=30))  # 23:30 there: today
    make_slot(service, starts_in=timedelta(hours=2))  # 01:00 on the 20th there: tomorrow
    login(host)
    page = text(client.get("/dashboard"))
    assert "今日 1件" in page and "2030年6月19日(水) 23:30" in page and "で表示しています" in page


def test_the_month_calendar_links_each_date_and_moves_a_month(client, busy_today):
    host, today, _ = busy_today
    page = text(client.get("/dashboard/calendar"))
    assert "2030年6月" in page and f'href="/slots/{today.id}"' in page and 'id="day-2030-06-20"' in page
    assert 'href="/dashboard/calendar?month=2030-07"' in page and 'href="/dashboard/calendar?month=2030-05"' in page
    july = text(client.get("/dashboard/calendar?month=2030-07"))
    assert "2030年7月" in july and "書道教室" in july and f'href="/slots/{today.id}"' not in july
    assert client.get("/dashboard/calendar?month=nonsense").status_code == 200


def test_a_new_host_sees_the_checklist_until_every_step_is_done(client, login, make_host, make_service,
                                                                make_slot, make_booking):
    host = make_host()
    login(host)
    page = text(client.get("/dashboard"))
    assert 'id="checklist"' in page and "0／5完了" in page and "最初のサービスを作成する" in page
    service = make_service(host, venue="manual_url")
    make_booking(make_slot(service))
    assert "4／5完了" in text(client.get("/dashboard"))  # service, date, no video tool needed, shared
    host.bio = "よろしくお願いします。"
    db.session.commit()
    assert 'id="checklist"' not in text(client.get("/dashboard"))


def test_the_dashboard_and_calendar_cost_the_same_queries_for_three_times_the_data(client, host_with_data,
                                                                                   count_queries):
    pages = ("/dashboard", "/dashboard/calendar")
    host_with_data(1, "small@zoom.test")
    small = [len(count_queries(p)) for p in pages]
    client.post("/logout", form_url="/dashboard")
    host_with_data(3, "big@zoom.test")
    assert [len(count_queries(p)) for p in pages] == small


# --- in the browser ---------------------------------------------------------------------------------

def log_in(page, host):
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_browser_today_start_button_and_the_failed_email_resent_in_one_tap(page, live_server, busy_today, width):
    host, today, bad = busy_today
    page.set_viewport_size({"width": width, "height": 812})
    log_in(page, host)
    expect(page.get_by_text("今日 1件")).to_be_visible()
    start = page.locator("#today").get_by_role("link", name="ホストとして開始")
    expect(start).to_be_visible()
    assert start.get_attribute("href") == f"/slots/{today.id}/zoom/start"
    page.locator(f"#attention-booking-{bad.id}").get_by_role("button", name="URLを再送").click()
    expect(page.get_by_text("鈴木 次郎様に参加URLのご案内を再送します。")).to_be_visible()
    page.goto("/dashboard")
    expect(page.locator("#attention")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_browser_month_calendar_moves_and_opens_a_slot(page, live_server, busy_today, width):
    host, today, _ = busy_today
    page.set_viewport_size({"width": width, "height": 812})
    log_in(page, host)
    page.get_by_role("link", name="カレンダーで見る").click()
    expect(page.get_by_role("heading", name="2030年6月")).to_be_visible()
    page.get_by_role("link", name=re.compile("次の月")).click()
    expect(page.get_by_role("heading", name="2030年7月")).to_be_visible()
    page.get_by_role("link", name=re.compile("前の月")).click()
    page.locator("#day-2030-06-20").get_by_role("link", name=re.compile("書道教室")).click()
    page.wait_for_url(f"**/slots/{today.id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_browser_checklist_for_a_new_host_goes_away_when_done(page, live_server, make_host, make_service, make_slot,
                                                               make_booking, width):
    host = make_host()
    page.set_viewport_size({"width": width, "height": 812})
    log_in(page, host)
    expect(page.get_by_role("heading", name="はじめに")).to_be_visible()
    page.locator("#step-profile").get_by_role("link", name="プロフィールを編集").click()
    page.wait_for_url("**/settings/account*")
    host.bio = "書道を教えています。"
    db.session.commit()
    make_booking(make_slot(make_service(host, venue="manual_url")))
    page.goto("/dashboard")
    expect(page.get_by_role("heading", name="はじめに")).to_have_count(0)
