"""Host and guest journeys in a real browser (Playwright driving Debian's chromium)."""
import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import ZoomConnection
from tests.factories import PASSWORD
from tests.conftest import body_html, body_text

pytestmark = pytest.mark.browser


def test_host_signs_up_creates_online_service_and_guest_books(page, live_server, run_jobs, smtp):
    # The host signs up.
    page.goto("/signup")
    page.get_by_label("メールアドレス").fill("hanako@example.com")
    page.get_by_label("ホスト名（予約者に表示されます）").fill("山田 花子")
    page.get_by_label("パスワード（10文字以上）").fill("calligraphy-2026")
    page.get_by_label("パスワード（確認）").fill("calligraphy-2026")
    page.get_by_role("button", name="登録する").click()
    expect(page.get_by_text("hanako@example.com 宛に、登録についてのメールをお送りしました")).to_be_visible()

    # … confirms the address with the link of the email, and logs in.
    run_jobs()
    [welcome] = smtp.wait_for(1)
    page.goto(re.search(r"https?://\S+/verify/\S+", body_text(welcome)).group(0))
    page.get_by_role("button", name="メールアドレスを確認する").click()
    expect(page.get_by_text("メールアドレスを確認しました")).to_be_visible()
    page.get_by_label("メールアドレス").fill("hanako@example.com")
    page.get_by_label("パスワード").fill("calligraphy-2026")
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")
    expect(page.get_by_text("山田 花子さんのダッシュボード")).to_be_visible()

    # … creates an online service with host notes …
    page.get_by_role("link", name="サービスを作成").first.click()
    page.get_by_label("サービスタイプ").select_option("online")
    page.get_by_label("タイトル").fill("オンライン書道教室")
    page.get_by_label("所要時間（分）").fill("60")
    page.get_by_label("定員（1枠あたり）").fill("5")
    page.get_by_label("Zoom（URLを自動発行して予約者に送信）").check()
    page.get_by_label("ホストからの連絡事項（申し込み完了メールに記載されます）").fill(
        "筆ペンをご用意ください。\n資料: https://example.com/shodo.pdf")
    page.get_by_role("button", name="保存する").click()
    page.wait_for_url(re.compile(r"/services/\d+$"))

    # … and a slot on 2030-06-20 10:00 JST.
    page.get_by_label("開催日時").fill("2030-06-20T10:00")
    page.get_by_role("button", name="追加する").click()
    expect(page.get_by_text("2030年6月20日(木) 10:00")).to_be_visible()
    public_url = page.locator("a[target=_blank]").first.get_attribute("href")

    # A guest books on the public page.
    page.context.clear_cookies()
    page.goto(public_url)
    expect(page.get_by_text("残り5席")).to_be_visible()
    page.get_by_label(re.compile("2030年6月20日")).check()
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro@example.com")
    page.get_by_role("button", name="申し込み内容を確認する").click()
    expect(page.get_by_text("まだお申し込みは完了していません")).to_be_visible()
    page.get_by_role("button", name="この内容で申し込む").click()
    expect(page.get_by_text("お申し込みが完了しました")).to_be_visible()

    # The confirmation email arrives through RQ and real SMTP, with the notes and the JST time.
    run_jobs()
    smtp.wait_for(2)
    [message] = smtp.to("ichiro@example.com")
    assert message["Subject"] == "【お申し込み完了】オンライン書道教室"
    text = body_text(message)
    assert "2030年6月20日(木) 10:00〜11:00" in text
    assert "筆ペンをご用意ください。" in text
    assert '<a href="https://example.com/shodo.pdf"' in body_html(message)
    assert f"{live_server}/c/" in text  # cancel link uses the public base URL

    # The host sees the booking on the dashboard.
    page.goto("/login")
    page.get_by_label("メールアドレス").fill("hanako@example.com")
    page.get_by_label("パスワード").fill("calligraphy-2026")
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")
    expect(page.get_by_text("ichiro@example.com")).to_be_visible()
    expect(page.get_by_text("予約 1名／定員5名")).to_be_visible()


def test_host_links_zoom_through_the_consent_page_and_turns_it_off(page, live_server, make_host, zoom):
    host = make_host(email="link@example.com")
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("link", name="連携設定").click()
    expect(page.locator("#zoom-link").get_by_text("OFF（未連携）")).to_be_visible()
    expect(page.get_by_text("Zoom sandbox")).to_be_visible()

    page.get_by_role("button", name="Zoomと連携する（ONにする）").click()
    # The emulator's consent page: pick the free (Basic) test user.
    page.get_by_role("button", name="Authorize as basic@zoom.test").click()
    page.wait_for_url("**/settings/zoom")
    expect(page.get_by_text("Zoomと連携しました")).to_be_visible()
    expect(page.locator("#zoom-link").get_by_text("ON（連携中）")).to_be_visible()
    expect(page.get_by_text("無料（Basic）", exact=True)).to_be_visible()
    expect(page.get_by_text("40分で自動的に終了")).to_be_visible()

    page.get_by_role("link", name="Zoom連携をOFFにする").click()
    expect(page.get_by_text("Zoom連携をOFFにしますか？")).to_be_visible()
    page.get_by_role("button", name="OFFにする").click()
    expect(page.get_by_text("Zoom連携をOFFにしました").first).to_be_visible()
    db.session.rollback()
    assert db.session.query(ZoomConnection).count() == 0


def test_host_composes_previews_schedules_and_watches_progress(page, live_server, make_host, make_service,
                                                               make_slot, make_booking, run_jobs, smtp):
    from datetime import timedelta

    from app import clock
    from app.messages import bulk

    host = make_host(email="bulk@example.com")
    service = make_service(host, title="ギター教室")
    slot = make_slot(service, timedelta(days=2))
    for n in range(3):
        make_booking(slot, f"生徒{n}", f"student{n}@example.com")
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("link", name="メッセージ", exact=True).click()
    page.get_by_role("link", name="新しいメッセージ").click()
    page.get_by_label("サービス").select_option(label="ギター教室")
    page.wait_for_url("**service_id=*")
    page.get_by_label(re.compile(r"予約3名")).check()
    page.get_by_label("件名").fill("{guest_name}さん、持ち物のご案内")
    page.get_by_label("本文").fill("{service_title}にはピックをお持ちください。")
    page.get_by_role("button", name="プレビュー").click()
    expect(page.get_by_text("送信先 3名")).to_be_visible()
    expect(page.locator(".preview-subject")).to_have_text("生徒0さん、持ち物のご案内")

    page.get_by_label("日時を指定して予約送信").check()
    when = clock.to_local(clock.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("送信日時（日本時間）").fill(when)
    page.get_by_role("button", name="送信内容を確認する").click()  # asks once
    expect(page.locator(".composer-summary")).to_have_text(re.compile(r"に3名へ送信します$"))
    page.get_by_role("button", name="予約する").click()
    expect(page.get_by_text("メッセージを予約しました。")).to_be_visible()
    expect(page.locator("#message-stage")).to_have_text("送信予定")

    # Two hours later the scheduler starts it and the workers send it.
    clock.advance(timedelta(hours=2, minutes=1))
    db.session.rollback()  # see what the browser's requests committed
    assert bulk.start_due_messages() == 1
    run_jobs()
    # The open page notices it started (one reload) and shows the filled bar and its stage.
    page.wait_for_function("() => (document.getElementById('progress-percent') || {}).textContent === '100'")
    expect(page.locator("#message-stage")).to_have_text("送信完了")
    expect(page.locator("#progress-sent")).to_have_text("3")
    assert len([m for m in smtp.messages if m["Subject"].endswith("持ち物のご案内")]) == 3
