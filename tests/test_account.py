"""The host's account page: contact address, notices, language, changing the login address (a link
mailed to the new one) and closing the account (its impact page, then bookings cancelled with guest
emails, video tools turned off, personal data erased, delivery records kept without it).

The edge cases run through the test client; ``test_*_in_a_browser`` walk the same pages in Chromium.
"""
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask_babel import refresh
from playwright.sync_api import expect

from app import clock
from app.account import closing
from app.auth import accounts
from app.extensions import db
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, GoogleConnection, Meeting, MeetingStatus,
                        Service, Slot, SlotStatus, User, ZoomConnection)
from tests.conftest import Browser, body_text
from tests.factories import PASSWORD

WRONG = "not-the-password-1"
NEW_PASSWORD = "another-password-77"


def text(response) -> str:
    return response.get_data(as_text=True)


def confirm_link(message) -> str:
    """The path and query of the email-change link in ``message``."""
    url = re.search(r"https?://\S+/settings/account/email/confirm\?token=\S+", body_text(message)).group(0)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def ask_email_change(client, new_email, password=PASSWORD):
    return client.post("/settings/account/email", {"new_email": new_email, "email_password": password},
                       form_url="/settings/account")


def log_in(app, email, password=PASSWORD):
    browser = Browser(app.test_client())
    return browser, browser.post("/login", {"email": email, "password": password})


# --- contact address, notices, language ------------------------------------------------------------------------

def test_the_settings_page_title_is_its_name_only(client, login, make_host):
    """The title block once swallowed two sections of the page: the browser tab read raw HTML."""
    login(make_host())
    page = client.get("/settings/account").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert title.startswith("アカウント設定") and "&lt;" not in title and "<" not in title
    assert page.count('id="email"') == 1 and page.count('id="close"') == 1


def test_contact_address_notices_and_language_are_saved(client, login, make_host):
    host = make_host(email="contact@example.com")
    login(host)
    page = text(client.get("/settings/account"))
    assert "空欄の場合はログイン用メールアドレス（contact@example.com）に届きます" in page
    assert re.search(r'<input checked id="notify_bookings"', page)  # on by default

    bad = client.post("/settings/account/contact", {"contact_email": "not an address"}, form_url="/settings/account")
    assert bad.status_code == 200 and "メールアドレスの形式が正しくありません。" in text(bad)
    saved = client.post("/settings/account/contact",
                        {"contact_email": " Office@Example.COM ", "show_contact_publicly": "y"},
                        form_url="/settings/account")
    assert saved.headers["Location"] == "/settings/account#contact"
    assert "予約者からの返信は office@example.com に届きます" in text(client.get("/settings/account"))
    db.session.refresh(host)
    assert (host.contact_email, host.show_contact_publicly, host.reply_to) == (
        "office@example.com", True, "office@example.com")
    # Empty, or the login address itself: replies go to the login address.
    client.post("/settings/account/contact", {"contact_email": "contact@example.com"}, form_url="/settings/account")
    db.session.refresh(host)
    assert (host.contact_email, host.show_contact_publicly, host.reply_to) == ("", False, "contact@example.com")

    done = client.post("/settings/account/notifications", {"notify_cancellations": "y", "notify_digest": "y"},
                       form_url="/settings/account")
    assert done.headers["Location"] == "/settings/account#notifications"
    assert "通知の設定を保存しました。" in text(client.get("/settings/account"))
    db.session.refresh(host)
    assert (host.notify_bookings, host.notify_cancellations, host.notify_digest) == (False, True, True)

    client.post("/settings/account", {"timezone": "Asia/Tokyo", "locale": "en"})
    db.session.refresh(host)
    assert host.locale == "en"
    refresh()  # the test's one app context keeps the request's locale: forget it, as a new request does
    assert '<html lang="en">' in text(client.get("/settings/account"))  # the host's pages in English now
    refresh()
    refused = client.post("/settings/account", {"timezone": "Asia/Tokyo", "locale": "fr"})
    db.session.refresh(host)
    assert refused.status_code == 200 and host.locale == "en"


# --- changing the login address --------------------------------------------------------------------------------

def test_email_change_goes_through_a_link_to_the_new_address_and_tells_the_old_one(
        app, client, login, make_host, run_jobs, smtp):
    host = make_host(email="before@example.com", name="山田 花子")
    login(host)
    assert "現在のパスワードが正しくありません。" in text(ask_email_change(client, "after@example.com", WRONG))
    assert "現在のログイン用メールアドレスと同じです。" in text(ask_email_change(client, " Before@Example.com"))
    asked = ask_email_change(client, "After@Example.com")
    assert asked.headers["Location"] == "/settings/account#email"
    assert "after@example.com に確認メールをお送りしました" in text(client.get("/settings/account"))
    db.session.refresh(host)
    assert host.email == "before@example.com"  # nothing changes until the link is followed

    run_jobs()
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "メールアドレス変更の確認" and "after@example.com" in mail["To"]
    assert "有効期限24時間" in body_text(mail)
    link = confirm_link(mail)
    assert "token=" not in str(db.session.query(Delivery.payload).all())  # the secret is not stored
    # The link only asks (mail scanners open links); the old login still works meanwhile.
    assert "after@example.com に変更します" in text(client.get(link))
    assert log_in(app, "before@example.com")[1].status_code == 302

    changed = client.post(link, {})
    assert changed.headers["Location"] == "/settings/account#email"
    assert "ログイン用メールアドレスを after@example.com に変更しました" in text(client.get("/settings/account"))
    assert client.get("/dashboard").status_code == 200  # this session goes on
    db.session.refresh(host)
    assert host.email == "after@example.com"
    assert log_in(app, "before@example.com")[1].status_code == 200  # refused
    assert log_in(app, "after@example.com")[1].status_code == 302

    run_jobs()
    [told] = smtp.wait_for(2)[1:]
    assert told["Subject"] == "ログイン用メールアドレスが変更されました" and "before@example.com" in told["To"]
    assert "after@example.com に変更されました" in body_text(told)
    # Used once: the link is dead now.
    again = client.get(link)
    assert again.headers["Location"] == "/settings/account"
    assert "このリンクは無効か、有効期限が切れています" in text(client.get("/settings/account"))


def test_an_address_of_another_account_is_refused_without_saying_so(client, login, make_host, run_jobs, smtp):
    make_host(email="taken@example.com")
    host = make_host(email="mine@example.com")
    login(host)
    free = text(client.get(ask_email_change(client, "free@example.com").headers["Location"]))
    taken = text(client.get(ask_email_change(client, "Taken@example.com").headers["Location"]))
    said = re.compile(r"\S+ に確認メールをお送りしました[^<]*")
    assert said.search(free).group(0).replace("free@", "X@") == said.search(taken).group(0).replace("taken@", "X@")
    run_jobs()
    smtp.wait_for(2)
    [to_taken] = smtp.to("taken@example.com")
    assert to_taken["Subject"] == "メールアドレス変更の手続きについて"
    assert "すでにアカウントに登録されているため、変更は行われていません" in body_text(to_taken)
    assert "/settings/account/email/confirm" not in body_text(to_taken) and "mine@example.com" not in body_text(to_taken)
    db.session.refresh(host)
    assert host.email == "mine@example.com"


def test_an_email_change_link_dies_when_the_address_is_taken_the_password_changes_or_it_expires(
        app, client, login, make_host, monkeypatch):
    host = make_host(email="owner@example.com")
    login(host)
    first = accounts.make_email_change_token(host, "wanted@example.com")
    later = accounts.make_email_change_token(host, "other@example.com")
    # Someone signs up with the address before the link is followed: the owner of the mailbox is told.
    make_host(email="wanted@example.com")
    refused = client.post(f"/settings/account/email/confirm?token={first}", {},
                          form_url=f"/settings/account/email/confirm?token={first}")
    assert "wanted@example.com はすでに別のアカウントで使われているため" in text(client.get(refused.headers["Location"]))
    db.session.refresh(host)
    assert host.email == "owner@example.com"
    # Another link still works until the password changes …
    assert accounts.email_change_for_token(later) is not None
    client.post("/settings/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD,
                                               "confirm": NEW_PASSWORD}, form_url="/settings/account")
    assert accounts.email_change_for_token(later) is None
    # … and once expired (itsdangerous reads the real clock: the limit is moved instead).
    db.session.refresh(host)
    fresh = accounts.make_email_change_token(host, "other@example.com")
    assert accounts.email_change_for_token(fresh) is not None
    monkeypatch.setitem(app.config, "EMAIL_CHANGE_MAX_AGE", -1)
    assert accounts.email_change_for_token(fresh) is None
    assert accounts.email_change_for_token("garbage") is None


def test_email_change_counts_wrong_passwords_as_failed_logins(app, client, login, make_host):
    host = make_host(email="guessed@example.com")
    login(host)
    statuses = [ask_email_change(client, "thief@example.com", WRONG).status_code for _ in range(12)]
    assert 429 in statuses
    assert "パスワードの誤りが続いたため" in text(ask_email_change(client, "thief@example.com", WRONG))


# --- closing the account ----------------------------------------------------------------------------------------

@pytest.fixture
def closing_host(make_host, make_service, make_slot, make_booking):
    """A host with two services: future bookings on two dates, a past one, and a cancelled one."""
    host = make_host(email="closing@example.com", name="閉じる 花子")
    host.bio, host.contact_email, host.photo_digest = "書道を教えています。", "office@closing.example", "abc123"
    db.session.commit()
    lesson = make_service(host, title="書道教室", venue="manual_url", description="電話 090-0000-0000",
                          host_notes="自宅の住所", capacity=5)
    first, second = make_slot(lesson, timedelta(days=2)), make_slot(lesson, timedelta(days=5))
    empty = make_slot(lesson, timedelta(days=9))
    guests = [make_booking(first, "予約 一郎", "ichiro@example.com"), make_booking(first, "予約 二郎", "jiro@example.com"),
              make_booking(second, "予約 三郎", "saburo@example.com")]
    past_slot = make_slot(lesson, timedelta(days=1))
    past = make_booking(past_slot, "過去 の人", "past@example.com")
    past_slot.starts_at = clock.now() - timedelta(days=3)
    db.session.commit()
    return {"host": host, "service": lesson, "guests": guests, "past": past, "empty": empty}


def test_the_impact_page_lists_future_bookings_and_asks_for_the_password(client, login, closing_host):
    login(closing_host["host"])
    page = text(client.get("/settings/account/close"))
    assert "今後のご予約3件をすべて取り消し、予約者3名に「ご予約の取り消し」のメールをお送りします" in page
    assert "取り消される今後のご予約（3件）" in page and page.count("書道教室") == 2
    assert "2名" in page and "1名" in page and "過去 の人" not in page
    refused = client.post("/settings/account/close", {"current_password": WRONG}, form_url="/settings/account/close")
    assert refused.status_code == 200 and "現在のパスワードが正しくありません。" in text(refused)
    db.session.rollback()
    assert db.session.get(User, closing_host["host"].id).deleted_at is None


def test_closing_cancels_bookings_erases_the_host_and_keeps_anonymous_delivery_records(
        app, client, login, closing_host, run_jobs, smtp, make_host):
    host, service = closing_host["host"], closing_host["service"]
    host_id, public_id = host.id, service.public_id
    other = Browser(app.test_client())
    other.post("/login", {"email": host.email, "password": PASSWORD})
    login(host)
    run_jobs()  # the confirmations go out
    # A notice to the host's own address, and an email-change link to a typed one, on record.
    ask_email_change(client, "typed-new@example.com")
    run_jobs()
    smtp.clear()

    done = client.post("/settings/account/close", {"current_password": PASSWORD}, form_url="/settings/account/close")
    assert done.status_code == 200 and "アカウントを削除しました" in text(done)
    assert "今後のご予約3件を取り消し" in text(done)
    assert client.get("/dashboard").status_code == 302 and other.get("/dashboard").status_code == 302

    db.session.rollback()
    host = db.session.get(User, host_id)
    assert host.deleted_at is not None
    assert (host.email, host.display_name, host.bio, host.photo_digest, host.contact_email, host.totp_secret) == (
        closing.closed_address(host_id), closing.CLOSED_NAME, "", None, "", None)
    service = db.session.get(Service, service.id)
    assert (service.description, service.host_notes) == ("", "")
    future = [db.session.get(Booking, b.id) for b in closing_host["guests"]]
    assert {b.status for b in future} == {BookingStatus.CANCELLED} and all(b.cancelled_by_host for b in future)
    assert db.session.get(Booking, closing_host["past"].id).status == BookingStatus.CONFIRMED  # the past stays
    assert db.session.get(Slot, closing_host["empty"].id).status == SlotStatus.CANCELLED

    run_jobs()
    smtp.wait_for(3)
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == [
        "ichiro@example.com", "jiro@example.com", "saburo@example.com"]
    removal = smtp.to("ichiro@example.com")[0]
    assert removal["Subject"] == "【ご予約の取り消し】書道教室"
    assert "ホストがアカウントを削除したため" in body_text(removal) and "閉じる 花子" not in body_text(removal)

    # Nothing of the host is left in the outbox; the records of what was sent are.
    rows = db.session.query(Delivery).all()
    dump = repr([(r.to_email, r.to_name, r.payload) for r in rows])
    for personal in ("closing@example.com", "office@closing.example", "閉じる 花子", "typed-new@example.com"):
        assert personal not in dump
    assert {r.kind for r in rows} >= {"booking_confirmation", "booking_removed", "email_change_confirm"}
    assert not [r for r in rows if r.status == DeliveryStatus.PENDING]

    # No login (answered as a wrong password), no public page, and the address is free again.
    assert log_in(app, "closing@example.com")[1].status_code == 200
    assert "メールアドレスまたはパスワードが正しくありません。" in text(log_in(app, "closing@example.com")[1])
    assert log_in(app, closing.closed_address(host_id), "closed")[1].status_code == 200
    assert client.get(f"/s/{public_id}").status_code == 404
    # The guest's own page of the booking still says what became of it.
    assert client.get(f"/s/{public_id}/booked/{future[0].cancel_token}").status_code == 200
    again = make_host(email="closing@example.com", name="また 花子")
    assert again.id != host_id


def test_closing_turns_off_zoom_and_google_and_deletes_their_meetings(
        client, login, link_zoom, link_google, make_host, make_service, make_slot, make_booking, run_jobs, zoom,
        google):
    host = make_host(email="tools@example.com")
    link_zoom(host)
    client.post("/logout", form_url="/dashboard")
    link_google(host)
    zoom_slot = make_slot(make_service(host, title="Zoom講座"), timedelta(days=2))
    meet_slot = make_slot(make_service(host, title="Meet講座", venue="google_meet"), timedelta(days=3))
    make_booking(zoom_slot)
    make_booking(meet_slot)
    run_jobs()  # the meetings are issued on both tools
    assert [m for m in zoom.meetings() if not m["deleted"]]
    assert [e for e in google.events("free@gmail.test") if e["status"] != "cancelled"]

    page = text(client.get("/settings/account/close"))
    assert "Zoom連携を解除し、発行済みのミーティング1件をZoomから削除します" in page
    assert "Google Meet連携を解除し、発行済みのミーティング1件をGoogle Meetから削除します" in page
    done = text(client.post("/settings/account/close", {"current_password": PASSWORD},
                            form_url="/settings/account/close"))
    assert "Zoom連携を解除しました" in done and "ミーティング2件を削除しました" in done
    db.session.rollback()
    assert [m for m in zoom.meetings() if not m["deleted"]] == []
    assert [e for e in google.events("free@gmail.test") if e["status"] != "cancelled"] == []
    assert len(zoom.calls("/oauth/revoke")) == 1 and google.calls("/revoke")
    assert db.session.query(ZoomConnection).count() == 0 and db.session.query(GoogleConnection).count() == 0
    assert {m.status for m in db.session.query(Meeting).all()} == {MeetingStatus.DELETED}
    run_jobs()  # the cancellations' own delete jobs find nothing left to do
    assert {m.status for m in db.session.query(Meeting).all()} == {MeetingStatus.DELETED}


def test_a_closed_account_has_no_email_change_link_and_its_old_sessions_do_not_load(app, client, login, make_host):
    host = make_host(email="gone@example.com")
    login(host)
    token = accounts.make_email_change_token(host, "elsewhere@example.com")
    session_token = host.session_token
    closing.close(host)
    assert accounts.email_change_for_token(token) is None
    assert accounts.load_user(session_token) is None
    db.session.rollback()
    assert accounts.load_user(db.session.get(User, host.id).session_token) is None


# --- in a browser ----------------------------------------------------------------------------------------------

def browser_log_in(page, email, password=PASSWORD):
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="ログイン").click()


@pytest.mark.browser
def test_host_changes_contact_notices_and_login_address_in_a_browser(page, live_server, make_host, run_jobs, smtp):
    make_host(email="used@example.com")
    make_host(email="hanako@example.com", name="山田 花子")
    browser_log_in(page, "hanako@example.com")
    page.wait_for_url("**/dashboard")
    page.goto("/settings/account")

    contact = page.locator("#contact")
    contact.get_by_label("連絡先メールアドレス（任意）").fill("office@hanako.example")
    contact.get_by_label("予約ページにも連絡先メールアドレスを表示する").check()
    contact.get_by_role("button", name="連絡先を保存").click()
    expect(page.get_by_text("予約者からの返信は office@hanako.example に届きます")).to_be_visible()
    expect(page.locator("#contact").get_by_label("連絡先メールアドレス（任意）")).to_have_value("office@hanako.example")

    notices = page.locator("#notifications")
    notices.get_by_label("新しいご予約があったとき").uncheck()
    notices.get_by_label("1件ずつではなく、1時間ごとにまとめて受け取る").check()
    notices.get_by_role("button", name="通知の設定を保存").click()
    expect(page.get_by_text("通知の設定を保存しました。")).to_be_visible()
    expect(page.locator("#notifications").get_by_label("新しいご予約があったとき")).not_to_be_checked()
    expect(page.locator("#notifications").get_by_label("1時間ごとにまとめて受け取る")).to_be_checked()

    # An address of another account: the same answer as any other, and no change.
    section = page.locator("#email")
    section.get_by_label("新しいメールアドレス").fill("used@example.com")
    section.get_by_label("現在のパスワード").fill(PASSWORD)
    section.get_by_role("button", name="確認メールを送る").click()
    expect(page.get_by_text("used@example.com に確認メールをお送りしました")).to_be_visible()
    # The host's own new address.
    section = page.locator("#email")
    section.get_by_label("新しいメールアドレス").fill("hanako.new@example.com")
    section.get_by_label("現在のパスワード").fill(PASSWORD)
    section.get_by_role("button", name="確認メールを送る").click()
    expect(page.get_by_text("hanako.new@example.com に確認メールをお送りしました")).to_be_visible()
    expect(page.get_by_text("現在のメールアドレス: hanako@example.com")).to_be_visible()

    run_jobs()
    smtp.wait_for(2)
    [taken] = smtp.to("used@example.com")
    assert "/settings/account/email/confirm" not in body_text(taken)
    [mail] = smtp.to("hanako.new@example.com")
    url = re.search(r"https?://\S+/settings/account/email/confirm\?token=\S+", body_text(mail)).group(0)
    assert url.startswith(live_server)

    # Followed on another device (no session there): it asks, then changes.
    page.context.clear_cookies()
    page.goto(url)
    page.get_by_role("button", name="メールアドレスを変更する").click()
    expect(page.get_by_text("ログイン用メールアドレスを hanako.new@example.com に変更しました")).to_be_visible()
    browser_log_in(page, "hanako@example.com")
    expect(page.get_by_text("メールアドレスまたはパスワードが正しくありません。")).to_be_visible()
    browser_log_in(page, "hanako.new@example.com")
    page.wait_for_url("**/dashboard")
    run_jobs()
    smtp.wait_for(3)
    [told] = smtp.to("hanako@example.com")
    assert "hanako.new@example.com に変更されました" in body_text(told)


@pytest.mark.browser
def test_host_closes_the_account_in_a_browser(page, live_server, client, link_zoom, link_google, make_host,
                                               make_service, make_slot, make_booking, run_jobs, smtp, zoom, google):
    host = make_host(email="closer@example.com", name="佐藤 先生")
    link_zoom(host)
    client.post("/logout", form_url="/dashboard")
    link_google(host)
    zoom_service = make_service(host, title="Zoom英会話")
    meet_service = make_service(host, title="Meet英会話", venue="google_meet")
    zoom_slot, meet_slot = make_slot(zoom_service, timedelta(days=2)), make_slot(meet_service, timedelta(days=4))
    for slot, guests in ((zoom_slot, ("a@example.com", "b@example.com")), (meet_slot, ("c@example.com",))):
        for email in guests:
            make_booking(slot, email=email)
    run_jobs()
    smtp.clear()
    public_url = f"/s/{zoom_service.public_id}"
    assert page.goto(public_url).status == 200

    browser_log_in(page, "closer@example.com")
    page.wait_for_url("**/dashboard")
    page.goto("/settings/account")
    page.get_by_role("link", name="アカウントを削除する").click()
    expect(page.get_by_role("heading", name="アカウントを削除しますか？")).to_be_visible()
    expect(page.get_by_text("今後のご予約3件をすべて取り消し、予約者3名に")).to_be_visible()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Zoom英会話")
    expect(rows.nth(0)).to_contain_text("2名")
    expect(rows.nth(1)).to_contain_text("Meet英会話")
    expect(page.get_by_text("Zoom連携を解除し、発行済みのミーティング1件をZoomから削除します")).to_be_visible()
    expect(page.get_by_text("Google Meet連携を解除し")).to_be_visible()

    page.get_by_label("現在のパスワード").fill(WRONG)
    page.get_by_role("button", name="アカウントを削除する").click()
    expect(page.get_by_text("現在のパスワードが正しくありません。")).to_be_visible()
    page.get_by_label("現在のパスワード").fill(PASSWORD)
    page.get_by_role("button", name="アカウントを削除する").click()
    expect(page.get_by_role("heading", name="アカウントを削除しました")).to_be_visible()
    expect(page.get_by_text("今後のご予約3件を取り消し")).to_be_visible()

    run_jobs()
    smtp.wait_for(3)
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == [
        "a@example.com", "b@example.com", "c@example.com"]
    assert {m["Subject"] for m in smtp.messages} == {"【ご予約の取り消し】Zoom英会話", "【ご予約の取り消し】Meet英会話"}
    db.session.rollback()
    assert [m for m in zoom.meetings() if not m["deleted"]] == []
    assert [e for e in google.events("free@gmail.test") if e["status"] != "cancelled"] == []
    assert len(zoom.calls("/oauth/revoke")) == 1 and google.calls("/revoke")
    closed = db.session.get(User, host.id)
    assert closed.email == closing.closed_address(host.id) and closed.display_name == closing.CLOSED_NAME
    dump = repr([(r.to_email, r.to_name, r.payload) for r in db.session.query(Delivery).all()])
    assert db.session.query(Delivery).count() >= 6 and "closer@example.com" not in dump and "佐藤 先生" not in dump

    assert page.goto(public_url).status == 404
    browser_log_in(page, "closer@example.com")
    expect(page.get_by_text("メールアドレスまたはパスワードが正しくありません。")).to_be_visible()
