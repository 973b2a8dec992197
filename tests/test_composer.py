"""The bulk composer and a message's pages, as a host uses them (issue 17).

Placeholders: inserted with buttons labelled in Japanese (placeholders.js, at the cursor), and any
other word in braces, ``{名前}`` included, refused before sending with what was probably meant.
Recipients without a join URL: counted, and told what they read instead. The preview steps through
recipients (server-rendered). Sending asks once, in a step of the same form (no JavaScript). A
message's pages agree with themselves: its title, its stage (送信予定 → 送信中 → 送信完了 / 一部失敗),
the per-recipient rows that follow the progress bar, and a scheduled message's real recipient count.
"""
import re
from datetime import datetime, timedelta, timezone
from html import unescape
from pathlib import Path

import pytest
from flask_babel import force_locale
from playwright.sync_api import expect

from app import clock
from app.extensions import db
from app.mail import outbox
from app.messages import bulk
from app.models import Delivery, DeliveryStatus, MeetingStatus, Message, Meeting
from tests.conftest import body_text, full_page_screenshot
from tests.factories import PASSWORD

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "composer"


@pytest.fixture
def piano(make_host, make_service, make_slot, make_booking):
    """A host with a class (no Zoom), two slots and three guests."""
    host = make_host(name="田中 先生")
    service = make_service(host, title="ピアノ教室", venue="manual_url", kind="class_event")
    first, second = make_slot(service, timedelta(days=2)), make_slot(service, timedelta(days=3))
    make_booking(first, "一郎", "ichiro@example.com")
    make_booking(first, "二郎", "jiro@example.com")
    make_booking(second, "三郎", "saburo@example.com")
    return host, service, first, second


def form(slot_ids, subject="{guest_name}様へのお知らせ", body="{service_title}は{slot_datetime}からです。", **extra):
    return {"slot_ids": [str(i) for i in slot_ids], "subject": subject, "body": body, "send_mode": "now", **extra}


def hidden_fields(page: str) -> dict:
    """The confirmation's hidden fields, as the browser posts them (slot_ids repeated)."""
    fields: dict = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page):
        if name == "slot_ids":
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = unescape(value)
    return fields


def bulk_rows():
    return db.session.query(Delivery).filter(Delivery.bulk_message_id.is_not(None)).count()


# --- 1. placeholders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, meant", [("{名前}", "{guest_name}"), ("｛お名前｝", "{guest_name}"),
                                          ("{guest_nam}", "{guest_name}"), ("｛guest_name｝", "{guest_name}"),
                                          ("{参加URL}", "{zoom_link}"), ("{会場}", None)])
def test_a_word_in_braces_that_is_no_placeholder_is_refused_before_sending(client, login, piano, typed, meant):
    host, service, first, _ = piano
    login(host)
    url = f"/messages/new?service_id={service.id}"
    for action in ("preview", "confirm", "send"):
        page = client.post(url, {**form([first.id], body=f"{typed} 様\n明日はよろしくお願いします。"),
                                 "action": action}).get_data(as_text=True)
        error = f"使えない差し込み項目があります: {typed}" + (f"（正しくは {meant}）" if meant else "")
        assert error + "。差し込み項目は、本文の上のボタンで入れてください。" in unescape(page), action
        assert "明日はよろしくお願いします。" in unescape(page)  # the draft is kept
        assert "に今すぐ送信します" not in page  # no confirmation
    with pytest.raises(bulk.MessageError):  # nor from the domain function
        bulk.compose(host, service, slot_ids=[first.id], all_upcoming=False, subject="お知らせ",
                     body=f"{typed} 様", scheduled_at=None)
    assert db.session.query(Message).count() == 0 and bulk_rows() == 0


def test_template_syntax_is_not_a_placeholder_and_still_arrives_as_typed(client, login, piano, run_jobs, smtp):
    host, service, first, _ = piano
    login(host)
    text = "{{ config }} {0.__class__} {guest_name!r} {} ｛｝ {{guest_name}}"
    confirm = client.post(f"/messages/new?service_id={service.id}",
                          {**form([first.id], subject="記号", body=text), "action": "confirm"}).get_data(as_text=True)
    assert "2名に今すぐ送信します" in confirm
    client.post(f"/messages/new?service_id={service.id}", {**hidden_fields(confirm), "action": "send"})
    run_jobs()
    mail = next(m for m in smtp.wait_for(5) if m["Subject"] == "記号")
    name = mail["To"].addresses[0].display_name
    assert "{{ config }} {0.__class__} {guest_name!r} {} ｛｝ {%s}" % name in body_text(mail)


def test_the_composer_offers_a_button_per_placeholder_with_its_japanese_label(client, login, piano):
    host, service, *_ = piano
    login(host)
    page = client.get(f"/messages/new?service_id={service.id}").get_data(as_text=True)
    buttons = dict((unescape(label), value) for value, label in
                   re.findall(r'<button class="button small" type="button" data-insert="([^"]+)"[^>]*>([^<]+)</button>',
                              page))
    assert buttons == {"お名前": "{guest_name}", "サービス名": "{service_title}", "開催日時": "{slot_datetime}",
                       "参加URL": "{zoom_link}", "ホスト名": "{host_name}"}
    # Shown by the script only; without it the list says what to type.
    assert re.search(r"<div class=\"placeholder-buttons\" data-placeholder-buttons hidden>", page)
    assert "placeholders.js" in page and "<code>{guest_name}</code>" in page
    # The fields the buttons insert into: the subject and the body.
    assert {re.search(r'name="(\w+)"', tag).group(1) for tag in re.findall(r"<(?:input|textarea)[^>]*>", page)
            if "data-placeholder-target" in tag} == {"subject", "body"}


# --- 2. recipients without a join URL, and the preview stepping through recipients ---------------------

def test_recipients_without_a_join_url_are_counted_and_read_when_it_comes(
        client, login, link_zoom, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host(name="山田 花子")
    link_zoom(host)
    service = make_service(host, title="オンライン書道", venue="zoom", capacity=5)
    ready, later = make_slot(service, timedelta(days=2)), make_slot(service, timedelta(days=6))
    make_booking(ready, "佐藤 一郎", "ichiro@example.com")
    make_booking(later, "鈴木 花", "hana@example.com")
    make_booking(later, "高橋 次郎", "jiro@example.com")
    run_jobs()  # both meetings issued on the emulator
    db.session.query(Meeting).filter_by(slot_id=later.id).one().status = MeetingStatus.FAILED
    db.session.commit()
    url = f"/messages/new?service_id={service.id}"
    data = form([ready.id, later.id], subject="当日のご案内", body="{guest_name}様\n参加はこちら: {zoom_link}")

    page = unescape(client.post(url, {**data, "action": "preview"}).get_data(as_text=True))
    instead = "参加URLは、開催の24時間前までにメールでお送りします。"
    assert "3名のうち2名には、まだ参加URLがありません。" in page and f"2名: 「{instead}」" in page
    assert page.count("参加URLなし") == 2  # marked in the list of recipients
    second = unescape(client.post(url, {**data, "preview_index": "1"}).get_data(as_text=True))
    assert f"参加URLの部分は「{instead}」になります" in second and f"参加はこちら: {instead}" in second
    # A message without {zoom_link} says nothing about it.
    quiet = client.post(url, {**data, "body": "{guest_name}様", "action": "preview"}).get_data(as_text=True)
    assert "まだ参加URLがありません" not in quiet

    confirm = client.post(url, {**data, "action": "confirm"}).get_data(as_text=True)
    assert "3名のうち2名には、まだ参加URLがありません。" in confirm
    client.post(url, {**hidden_fields(confirm), "action": "send"})
    run_jobs()
    mails = {m["To"].addresses[0].addr_spec: body_text(m) for m in smtp.wait_for(6) if m["Subject"] == "当日のご案内"}
    assert f"参加はこちら: {instead}" in mails["hana@example.com"]
    assert re.search(r"参加はこちら: http://\S+/j/\S+", mails["ichiro@example.com"])


@pytest.mark.parametrize("venue, notes, instead", [
    ("manual_url", "当日はこちら: https://meet.example.com/abc", "参加URLは、お申し込み完了メールでご案内しています。"),
    ("manual_url", "", "参加URLは、あらためてご案内します。"),
    ("in_person", "", "対面での開催のため、参加URLはありません。"),
    ("zoom", "", "参加URLは、あらためてご案内します。"),  # Zoom not linked: nothing will come by itself
])
def test_services_that_do_not_issue_urls_say_so_in_place_of_the_link(make_host, make_service, make_slot, make_booking,
                                                                     venue, notes, instead):
    service = make_service(make_host(), venue=venue, host_notes=notes)
    booking = make_booking(make_slot(service))
    with force_locale("ja"):  # as the outbox renders it: in the email's language
        [group] = bulk.without_join_url([booking])
        assert group.instead == instead and group.bookings == [booking]
        assert bulk.placeholder_values(booking)["zoom_link"] == instead


def test_the_preview_steps_through_the_recipients(client, login, piano):
    host, service, first, second = piano
    login(host)
    url = f"/messages/new?service_id={service.id}"
    data = form([first.id, second.id])
    first_page = client.post(url, {**data, "action": "preview"}).get_data(as_text=True)
    assert "プレビュー（一郎様あて）" in first_page and "1人目 / 3名" in first_page
    assert re.search(r'name="preview_index" value="-1"[^>]*disabled', first_page)  # 前へ: nothing before
    nxt = re.search(r'name="preview_index" value="(\d+)"[^>]*>次へ', first_page).group(1)
    page = client.post(url, {**data, "preview_index": nxt}).get_data(as_text=True)
    assert "プレビュー（二郎様あて）" in page and "2人目 / 3名" in page
    assert '<span class="preview-subject">二郎様へのお知らせ</span>' in page
    last = client.post(url, {**data, "preview_index": "2"}).get_data(as_text=True)
    assert "プレビュー（三郎様あて）" in last and re.search(r'value="3"[^>]*disabled[^>]*>次へ', last)
    beyond = client.post(url, {**data, "preview_index": "99"}).get_data(as_text=True)
    assert "3人目 / 3名" in beyond  # an index out of range shows the last one
    assert db.session.query(Message).count() == 0


# --- 3. sending asks once -----------------------------------------------------------------------------

def test_sending_now_asks_once_then_sends_what_was_confirmed(client, login, piano, run_jobs, smtp):
    host, service, first, _ = piano
    login(host)
    url = f"/messages/new?service_id={service.id}"
    confirm = client.post(url, {**form([first.id]), "action": "confirm"}).get_data(as_text=True)
    assert '<h2 class="composer-summary">2名に今すぐ送信します</h2>' in confirm
    assert ">2名に送信する</button>" in confirm and ">戻って直す</button>" in confirm
    assert db.session.query(Message).count() == 0  # nothing is sent by the first press
    fields = hidden_fields(confirm)
    assert fields["body"] == "{service_title}は{slot_datetime}からです。" and fields["confirmed_count"] == "2"

    back = client.post(url, {**fields, "action": "edit"}).get_data(as_text=True)  # 戻って直す: the draft is kept
    assert 'value="{guest_name}様へのお知らせ"' in back and "送信内容を確認する" in back

    sent = client.post(url, {**fields, "action": "send"})
    assert sent.status_code == 302
    run_jobs()
    assert sorted(m["Subject"] for m in smtp.wait_for(5) if "お知らせ" in m["Subject"]) == [
        "一郎様へのお知らせ", "二郎様へのお知らせ"]


def test_a_send_whose_recipients_changed_since_the_confirmation_asks_again(client, login, piano, make_booking):
    host, service, first, _ = piano
    login(host)
    url = f"/messages/new?service_id={service.id}"
    fields = hidden_fields(client.post(url, {**form([first.id]), "action": "confirm"}).get_data(as_text=True))
    make_booking(first, "四郎", "shiro@example.com")  # booked while the host read the confirmation
    again = client.post(url, {**fields, "action": "send"})
    page = again.get_data(as_text=True)
    assert again.status_code == 200 and "確認の後に送信先が2名から3名に変わりました" in page
    assert "3名に今すぐ送信します" in page and db.session.query(Message).count() == 0
    assert client.post(url, {**hidden_fields(page), "action": "send"}).status_code == 302


@pytest.mark.parametrize("zone, summary", [
    ("Asia/Tokyo", "2030年12月20日(金) 10:00に2名へ送信します"),
    ("America/Los_Angeles", "ロサンゼルス時間 2030年12月20日(金) 10:00に2名へ送信します"),
])
def test_a_scheduled_send_says_when_in_the_hosts_zone(client, login, piano, zone, summary):
    host, service, first, _ = piano
    host.timezone = zone
    db.session.commit()
    clock.travel_to(datetime(2030, 12, 15, tzinfo=timezone.utc))
    login(host)
    url = f"/messages/new?service_id={service.id}"
    page = client.post(url, {**form([first.id], send_mode="schedule", scheduled_at="2030-12-20T10:00"),
                             "action": "confirm"}).get_data(as_text=True)
    assert f'<h2 class="composer-summary">{summary}</h2>' in page and ">予約する</button>" in page
    assert client.post(url, {**hidden_fields(page), "action": "send"}).status_code == 302
    message = db.session.query(Message).one()
    assert clock.format_datetime_local(message.scheduled_at, zone) == "2030年12月20日(金) 10:00"


# --- 4. a message's pages ------------------------------------------------------------------------------

def test_a_messages_pages_agree_title_stage_rows_and_progress(app, client, login, piano, run_jobs, smtp):
    host, service, first, second = piano
    login(host)
    message = bulk.compose(host, service, slot_ids=[first.id, second.id], all_upcoming=False,
                           subject="{guest_name}様へのお知らせ", body="{slot_datetime}からです。", scheduled_at=None)
    page = client.get(f"/messages/{message.id}").get_data(as_text=True)
    # Its title is the subject as written, the placeholder as its label (not one guest's copy).
    assert "<title>［お名前］様へのお知らせ |" in page
    assert '<span class="ph-label">お名前</span>様へのお知らせ</h1>' in page
    assert 'data-stage="sending">送信中</span>' in page
    progress = client.get(f"/messages/{message.id}/progress.json").json
    assert progress["stage"] == "sending" and progress["stage_label"] == "送信中" and progress["done"] == 0
    assert progress["rows_html"].count("送信予定") == 3 and "ichiro@example.com" in progress["rows_html"]

    # One guest's email fails for good, the others are sent.
    rows = bulk.recipients(message)
    outbox.send_deliveries([rows[0].id, rows[1].id])
    rows[2].status, rows[2].last_error = DeliveryStatus.FAILED, "SMTPRecipientsRefused: (550, b'no such user')"
    db.session.commit()
    progress = client.get(f"/messages/{message.id}/progress.json").json
    assert (progress["stage"], progress["stage_label"], progress["failed"]) == ("partly_failed", "一部失敗", 1)
    assert progress["rows_html"].count("送信済み") == 2 and "送信失敗" in progress["rows_html"]
    assert progress["resend_label"] == "失敗した1件だけ再送する"
    page = client.get(f"/messages/{message.id}").get_data(as_text=True)
    assert 'data-stage="partly_failed">一部失敗</span>' in page and "失敗した1件だけ再送する" in page

    client.post(f"/messages/{message.id}/resend-failed", form_url=f"/messages/{message.id}")
    outbox.send_due()
    assert client.get(f"/messages/{message.id}/progress.json").json["stage"] == "sent"
    listing = client.get("/messages").get_data(as_text=True)
    assert 'data-stage="sent">送信完了</span>' in listing and "3名に送信済み" in listing


def test_a_scheduled_message_shows_its_stage_and_its_real_recipient_count(client, login, piano, make_booking):
    host, service, first, second = piano
    login(host)
    message = bulk.compose(host, service, slot_ids=[first.id], all_upcoming=False, subject="持ち物",
                           body="楽譜をお持ちください。", scheduled_at=clock.now() + timedelta(days=1))
    make_booking(first, "四郎", "shiro@example.com")  # booked after it was written
    listing = client.get("/messages").get_data(as_text=True)
    row = listing[listing.index(f'id="message-{message.id}"'):]
    assert 'data-stage="scheduled">送信予定</span>' in row and '<td data-label="送信先" class="recipients-count">3名' in row
    page = client.get(f"/messages/{message.id}").get_data(as_text=True)
    assert "3名（現時点）" in page and 'data-stage="scheduled">送信予定</span>' in page
    progress = client.get(f"/messages/{message.id}/progress.json").json
    assert progress["status"] == "scheduled" and "rows_html" not in progress
    bulk.cancel(message)
    assert 'data-stage="cancelled">取り消し済み</span>' in client.get("/messages").get_data(as_text=True)


# --- in a browser -----------------------------------------------------------------------------------------

def shoot(page, name: str) -> None:
    """Full-page screenshots at 375 and 1280 px under test-artifacts/composer/ (then back to 375)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")  # the preview's srcdoc frames drawn
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 812})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (name, width)
        full_page_screenshot(page, str(SHOTS / f"{name}-{width}.png"))
    page.set_viewport_size({"width": 375, "height": 812})


@pytest.mark.browser
def test_a_host_inserts_a_placeholder_with_a_button_on_a_phone_and_sends_after_confirming(
        page, live_server, piano, run_jobs, smtp):
    host, service, first, second = piano
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")

    page.goto(f"/messages/new?service_id={service.id}")
    page.get_by_label(re.compile(r"予約2名")).check()
    page.get_by_label("件名").fill("明日のレッスンについて")
    body = page.get_by_label("本文")
    body.fill("明日はよろしくお願いします。")
    body.press("Home")  # the cursor at the start of the line: the name goes there
    button = page.get_by_role("button", name="お名前", exact=True)
    assert button.bounding_box()["height"] >= 44
    button.click()
    body.press_sequentially("様、")
    expect(body).to_have_value("{guest_name}様、明日はよろしくお願いします。")
    page.get_by_role("button", name="サービス名").click()  # at the cursor, which is after 「様、」
    expect(body).to_have_value("{guest_name}様、{service_title}明日はよろしくお願いします。")
    shoot(page, "1-compose")

    page.get_by_role("button", name="プレビュー").click()
    expect(page.locator(".preview-subject")).to_have_text("明日のレッスンについて")
    expect(page.locator(".preview-text")).to_contain_text("一郎様、ピアノ教室明日はよろしくお願いします。")
    page.get_by_role("button", name="次へ").click()
    expect(page.locator(".preview-text")).to_contain_text("二郎様、ピアノ教室")
    shoot(page, "2-preview")

    page.get_by_role("button", name="送信内容を確認する").click()
    expect(page.locator(".composer-summary")).to_have_text("2名に今すぐ送信します")
    assert db.session.query(Message).count() == 0
    shoot(page, "3-confirm")
    page.get_by_role("button", name="2名に送信する").click()
    page.wait_for_url(re.compile(r"/messages/\d+$"))
    expect(page.get_by_text("メッセージの送信を開始しました。")).to_be_visible()
    expect(page.locator("#message-stage")).to_have_text("送信中")
    shoot(page, "4-status-sending")

    run_jobs()  # the workers send; the open page follows without a reload (progress.js)
    expect(page.locator("#message-stage")).to_have_text("送信完了", timeout=10_000)
    expect(page.locator("#recipients tbody")).to_contain_text("送信済み")
    expect(page.locator("#progress-percent")).to_have_text("100")
    assert page.get_by_text("メッセージの送信を開始しました。").is_visible()  # still the same page
    shoot(page, "5-status-sent")
    mails = [m for m in smtp.wait_for(5) if m["Subject"] == "明日のレッスンについて"]
    assert sorted(body_text(m).split("\n")[0] for m in mails) == [
        "一郎様、ピアノ教室明日はよろしくお願いします。", "二郎様、ピアノ教室明日はよろしくお願いします。"]

    page.goto("/messages")
    shoot(page, "6-list")
