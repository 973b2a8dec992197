"""Staff pages as staff use them (issue 17): a staff home they land on, the delivery log and the
mailbox in Japanese and Japan time, and a template gallery that lays out at 1280 px and on a phone."""
import mailbox
import re
from datetime import datetime, timedelta, timezone
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from app import clock
from app.extensions import db
from app.mail import outbox
from app.mail.render import registered_kinds
from app.models import DeliveryStatus
from app.staff import deliveries
from tests.conftest import full_page_screenshot
from tests.factories import PASSWORD

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "composer"
#: 12:00 in Tokyo on 20 June 2030 (03:00 UTC): the Japan day began at 15:00 UTC on the 19th.
NOON_JST = datetime(2030, 6, 20, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def staff(make_host):
    return make_host(email="ops@example.com", name="運営", is_staff=True)


def delivery(kind="password_reset", to="host@example.com", **values):
    row = outbox.queue_email(kind, to_email=to, payload={})
    for name, value in values.items():
        setattr(row, name, value)
    db.session.commit()
    return row


def test_staff_land_on_the_staff_home_after_login_and_at_the_root(client, make_host, staff):
    response = client.post("/login", {"email": staff.email, "password": PASSWORD})
    assert response.headers["Location"] == "/staff/"  # straight there, not through the host dashboard
    response = client.get("/staff/")
    page = response.get_data(as_text=True)
    assert "<h1>運営ホーム</h1>" in page and 'aria-current="page">運営ホーム</a>' in page
    for link in ("/staff/templates", "/staff/deliveries", "/staff/mailbox", "/staff/migration"):
        assert f'href="{link}' in page
    assert client.get("/").headers["Location"] == "/staff/"
    assert client.get("/dashboard").headers["Location"] == "/staff/"  # 「ダッシュボード」 in the menu too
    client.post("/logout", form_url="/staff/")
    host = make_host()
    assert client.post("/login", {"email": host.email, "password": PASSWORD}).headers["Location"] == "/dashboard"
    assert client.get("/").headers["Location"] == "/dashboard"
    assert client.get("/staff/").status_code == 403


def test_the_staff_home_counts_what_needs_a_look_today_in_japan_time(client, login, staff):
    clock.travel_to(NOON_JST)
    delivery(status=DeliveryStatus.FAILED, claimed_at=datetime(2030, 6, 19, 16, 0, tzinfo=timezone.utc),
             last_error="SMTPRecipientsRefused")  # 01:00 JST today, though the 19th in UTC
    delivery(status=DeliveryStatus.FAILED, claimed_at=datetime(2030, 6, 19, 14, 0, tzinfo=timezone.utc))  # 23:00 yesterday
    delivery(due_at=NOON_JST - timedelta(minutes=30))  # due half an hour ago: workers down?
    delivery(due_at=NOON_JST + timedelta(minutes=5), last_error="SMTPServerDisconnected")  # being retried
    delivery(kind="meeting_url", due_at=NOON_JST + timedelta(hours=1), last_error="waiting:daily_limit")  # not a retry
    delivery(status=DeliveryStatus.SENT, sent_at=NOON_JST)
    login(staff)
    page = client.get("/staff/").get_data(as_text=True)
    assert "件数は日本時間の今日（2030年6月20日(木)）のものです。" in page
    assert '<dd id="home-failed-today"><strong>1件</strong></dd>' in page
    assert '<dd id="home-overdue">1件</dd>' in page and '<dd id="home-retrying">1件</dd>' in page
    assert "ワーカーとスケジューラーが動いているか確認してください" in page
    assert 'href="/staff/deliveries?status=FAILED"' in page
    assert f"{len(registered_kinds())}種類のメール" in page


def test_deliveries_show_kinds_and_states_in_japanese_and_times_in_japan_time(client, login, staff):
    staff.timezone = "America/Los_Angeles"  # staff abroad still read the log in Japan time, labelled
    db.session.commit()
    clock.travel_to(NOON_JST)
    delivery(status=DeliveryStatus.FAILED, to="nobody@example.com", attempts=5, last_error="SMTP down")
    delivery(kind="booking_confirmation", to="guest@example.com", due_at=NOON_JST + timedelta(minutes=5),
             last_error="SMTPServerDisconnected: gone", attempts=1)
    delivery(kind="meeting_url", to="waiting@example.com", last_error="waiting:daily_limit")
    delivery(kind="bulk_message", to="sent@example.com", status=DeliveryStatus.SENT, sent_at=NOON_JST)
    login(staff)
    page = client.get("/staff/deliveries").get_data(as_text=True)
    for shown in ("パスワード再設定（ホスト宛）", "お申し込み完了（予約者宛）", "参加URLのご案内（予約者宛）",
                  "一括メッセージ（予約者宛）", '<span class="delivery-state">送信失敗</span>',
                  '<span class="delivery-state">再試行待ち</span>', "5回試行",
                  '<span class="delivery-state">URL準備中（発行を待っています）</span>',
                  '<span class="delivery-state">送信済み</span>', "日時（日本時間）",
                  "送信: 2030年6月20日(木) 12:00", "予定: 2030年6月20日(木) 12:05"):
        assert shown in page, shown
    assert ">failed<" not in page and ">pending<" not in page and ">sent<" not in page
    assert '<option value="FAILED" >送信失敗</option>' in page or re.search(r'value="FAILED"\s*>送信失敗<', page)
    assert re.search(r'<option value="booking_confirmation"\s*>お申し込み完了（予約者宛）</option>', page)
    only = client.get("/staff/deliveries?kind=booking_confirmation").get_data(as_text=True)
    assert "guest@example.com" in only and "nobody@example.com" not in only
    assert re.search(r'<option value="booking_confirmation" selected>', only)


def test_every_email_kind_has_a_japanese_name_for_staff(app):  # the app registers every kind
    assert set(deliveries.KIND_LABELS) == set(registered_kinds())
    with app.test_request_context():  # the names are lazy: read in a request's language (Japanese)
        for label in deliveries.KIND_LABELS.values():
            assert re.search(r"（(予約者|ホスト)宛）$", str(label)), label


def put_mail(directory: str, subject: str, date: str, to="guest@example.com") -> str:
    message = MIMEText("本文です。", "plain", "utf-8")
    message["Subject"], message["To"], message["Date"] = subject, to, date
    return mailbox.Maildir(directory, create=True).add(message.as_bytes())


def test_the_mailbox_shows_dates_in_japan_time_labelled(app, client, login, staff, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAILBOX_DIR", str(tmp_path / "mailbox"))
    key = put_mail(str(tmp_path / "mailbox"), "【お申し込み完了】書道", "Wed, 19 Jun 2030 16:30:00 +0000")
    put_mail(str(tmp_path / "mailbox"), "ゾーンなし", "Wed, 19 Jun 2030 01:00:00 -0000")
    login(staff)
    page = client.get("/staff/mailbox").get_data(as_text=True)
    assert "日時（日本時間）" in page
    assert "2030年6月20日(木) 01:30" in page and "2030年6月19日(水) 10:00" in page
    assert "+0000" not in page and "-0000" not in page
    one = client.get(f"/staff/mailbox/{key}").get_data(as_text=True)
    assert "日時（日本時間）" in one and "2030年6月20日(木) 01:30" in one
    home = client.get("/staff/").get_data(as_text=True)
    assert "組み込みSMTPサーバーが受け取ったメール: 2通" in home


# --- in a browser -----------------------------------------------------------------------------------------

#: Visible targets under 44 px on the page (buttons, links, fields, summaries), as the phone sweep counts them.
SMALL_TARGETS = """() => [...document.querySelectorAll('main a[href], main button, main input:not([type=hidden]), main select, main summary')]
  .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && (r.height < 43.5 || r.width < 43.5); })
  .map(e => e.tagName + ' ' + (e.innerText || e.name || '').slice(0, 20))"""


def look(page, name: str) -> None:
    """Screenshots at 375 and 1280 px; neither scrolls sideways, and the phone's targets are 44 px."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 812})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (name, width)
        if width == 375:
            assert page.evaluate(SMALL_TARGETS) == [], name
        full_page_screenshot(page, str(SHOTS / f"staff-{name}-{width}.png"))


@pytest.mark.browser
def test_staff_pages_lay_out_on_a_phone_and_at_1280(app, page, live_server, staff, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAILBOX_DIR", str(tmp_path / "mailbox"))
    put_mail(str(tmp_path / "mailbox"), "【参加URLのご案内】はじめてのオンライン書道レッスン",
             "Wed, 19 Jun 2030 16:30:00 +0000", to="misaki.sato.calligraphy-lessons-2026@example-school.co.jp")
    delivery(status=DeliveryStatus.FAILED, to="misaki.sato.calligraphy-lessons-2026@example-school.co.jp",
             attempts=5, last_error="SMTPRecipientsRefused: {'x@example.com': (550, b'5.1.1 No such user')}",
             claimed_at=clock.now())
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(staff.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/staff/")
    look(page, "home")

    page.goto("/staff/templates?kind=meeting_url")
    look(page, "gallery")
    page.set_viewport_size({"width": 1280, "height": 812})
    sample = page.locator(".template-sample").first
    text = sample.locator(".gallery-text").bounding_box()
    phone = sample.locator(".frame-phone").bounding_box()
    desktop = sample.locator(".frame-desktop").bounding_box()
    assert text["width"] >= 350, text  # was one character wide
    assert phone["width"] >= 374 and desktop["width"] >= 800, (phone, desktop)
    assert phone["y"] == pytest.approx(text["y"], abs=40) and desktop["y"] > phone["y"] + phone["height"]
    page.set_viewport_size({"width": 375, "height": 812})
    phone = sample.locator(".frame-phone").bounding_box()
    assert phone["x"] >= 0 and phone["x"] + phone["width"] <= 375
    page.get_by_label("メールの種類").select_option(label="お申し込み完了（予約者宛）")  # autosubmit.js
    page.wait_for_url("**/staff/templates?kind=booking_confirmation")

    page.goto("/staff/deliveries")
    look(page, "deliveries")
    page.goto("/staff/mailbox")
    look(page, "mailbox")
