"""Google Meet through the meetings wing, as real as Zoom: a Google Meet service's booking gets one
calendar event with a Meet conference on the host's calendar, the URL email carries it 24 hours
before, a deleted event is re-issued, moves and OFF reach Google, and failures are retried with the
one policy. Real parts: the Google emulator, Redis, RQ's worker, aiosmtpd."""
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.mail import outbox
from app.meetings import issuing, timing, withdraw
from app.models import GoogleConnection, MeetingStatus
from app.services import slots
from tests.conftest import body_html, body_text
from tests.test_zoom_promises import run_until_settled
from tests.factories import PASSWORD


def meet_service(make_service, host, **values):
    return make_service(host, venue="google_meet", **values)


def inserts(google):
    return google.calls("/calendar/v3/calendars/primary/events", "POST")


def live_events(google, email="free@gmail.test"):
    return [e for e in google.events(email) if e["status"] != "cancelled"]


def test_a_booking_gets_one_meet_event_without_guests_and_the_url_email_24h_before(
        app, client, link_google, make_host, make_service, make_slot, make_booking, run_jobs, smtp, google):
    host = make_host(name="山田 花子")
    host.notify_bookings = False  # this test counts the URL emails and notices: no 「新しいご予約」 notice
    db.session.commit()
    link_google(host)
    slot = make_slot(meet_service(make_service, host, title="英会話グループ", capacity=5, duration_minutes=50),
                     starts_in=timedelta(days=3))
    first = make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")
    make_booking(slot, name="鈴木 花", email="hana@example.com")
    run_jobs()
    meeting = issuing.meeting_for(slot.id)
    assert meeting.provider == "google_meet" and meeting.status == MeetingStatus.ISSUED
    assert re.fullmatch(r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}", meeting.join_url)
    [event] = live_events(google)
    assert len(inserts(google)) == 1  # one event for the slot, not one per guest
    assert event["id"] == meeting.external_id and not event.get("attendees")  # no guest address goes to Google
    [call] = inserts(google)
    assert call["query"]["sendUpdates"] == ["none"] or call["query"]["sendUpdates"] == "none"

    clock.travel_to(slot.starts_at - timing.URL_LEAD - timedelta(seconds=1))
    assert outbox.send_due() == 0
    clock.travel_to(slot.starts_at - timing.URL_LEAD)
    outbox.send_due()
    clock.advance(timedelta(minutes=1))
    outbox.send_due()
    mail = next(m for m in smtp.to("ichiro@example.com") if m["Subject"] == "【参加URLのご案内】英会話グループ")
    text, html = body_text(mail), body_html(mail)
    join = f"{app.config['APP_BASE_URL']}/j/{first.join_token}"
    assert re.search(rf'<a href="{re.escape(join)}"[^>]*>Google Meetで参加する</a>', html)
    assert "参加URL（Google Meet）" in text and "パスコード" not in text
    assert "「参加をリクエスト」" in text  # guests are not on the event: they ask to join
    assert "40分" not in text and "60分" not in text  # a 50-minute lesson is under the free limit
    assert client.get(f"/j/{first.join_token}/go").headers["Location"] == meeting.join_url
    [notice] = [m for m in smtp.to(host.email) if "Google Meet" in m["Subject"]]
    assert notice["Subject"] == "予約者にGoogle MeetのURLをお送りしました（英会話グループ）"
    # The URL emails of one batch asked Google about the meeting once, not once per guest.
    gets = google.calls(f"/calendar/v3/calendars/primary/events/{meeting.external_id}", "GET")
    assert len(gets) == 1, gets


@pytest.mark.parametrize("email, warned", [("free@gmail.test", True), ("teacher@school.test", False)])
def test_a_free_account_warns_of_the_60_minute_group_limit_and_a_workspace_one_does_not(
        email, warned, link_google, make_host, make_service, make_slot, make_booking, run_jobs, smtp, client, google):
    host = make_host()
    link_google(host, email)
    slot = make_slot(meet_service(make_service, host, title="90分講座", capacity=4, duration_minutes=90),
                     starts_in=timedelta(hours=3))
    make_booking(slot, email="guest@example.com")
    run_jobs()
    outbox.send_due()
    [mail] = [m for m in smtp.to("guest@example.com") if m["Subject"].startswith("【参加URLのご案内】")]
    assert ("3人以上が参加している場合、開始から60分で終了します" in body_text(mail)) is warned
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert ("3人以上の通話は60分で終了します" in page) is warned
    assert ("Google Workspace（school.test）" in page) is not warned


def test_an_event_deleted_in_google_calendar_is_issued_again_before_the_url_email(
        client, link_google, make_host, make_service, make_slot, make_booking, run_jobs, smtp, google):
    host = make_host()
    link_google(host)
    slot = make_slot(meet_service(make_service, host), starts_in=timedelta(days=2))
    booking = make_booking(slot)
    run_jobs()
    first = issuing.meeting_for(slot.id)
    first_id, first_url = first.external_id, first.join_url
    google.cancel_event_out_of_band("free@gmail.test", first_id)  # the host deleted it in Google Calendar
    clock.travel_to(slot.starts_at - timing.URL_LEAD)
    outbox.send_due()
    db.session.rollback()
    again = issuing.meeting_for(slot.id)
    assert again.status == MeetingStatus.ISSUED and again.external_id != first_id and again.join_url != first_url
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == again.join_url
    assert [e["id"] for e in live_events(google)] == [again.external_id]


def test_a_move_patches_the_event_and_keeps_its_link_and_the_last_guest_gone_deletes_it(
        make_host, link_google, make_service, make_slot, make_booking, run_jobs, google):
    host = make_host()
    link_google(host)
    slot = make_slot(meet_service(make_service, host), starts_in=timedelta(days=2))
    booking = make_booking(slot)
    run_jobs()
    meeting = issuing.meeting_for(slot.id)
    slots.move_slot(slot, slot.starts_at + timedelta(days=1))
    db.session.commit()
    run_jobs()
    [event] = live_events(google)
    assert event["hangoutLink"] == meeting.join_url or event["conferenceData"]["entryPoints"][0]["uri"] == meeting.join_url
    assert google.calls(f"/calendar/v3/calendars/primary/events/{meeting.external_id}", "PATCH")
    bookings.cancel_booking(booking)
    db.session.commit()
    run_jobs()
    assert live_events(google) == []
    assert issuing.meeting_for(slot.id).status == MeetingStatus.DELETED


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", ["429", "403_rate", "500", "503", "html", "timeout"])
def test_a_delete_google_refuses_is_retried_with_the_one_policy(
        kind, persistent, app, monkeypatch, client, make_host, link_google, make_service, make_slot, make_booking,
        run_jobs, smtp, google):
    host = make_host()
    link_google(host)
    slot = make_slot(meet_service(make_service, host, title="削除レッスン"), starts_in=timedelta(days=2))
    booking = make_booking(slot)
    run_jobs()
    event_id = issuing.meeting_for(slot.id).external_id
    if kind == "timeout":  # Google answers after our client gave up (it gives up after 0.3 s here)
        monkeypatch.setitem(app.config, "GOOGLE_HTTP_TIMEOUT", 0.3)
        google.configure(timeout_seconds=0.8)
    google.inject_fault("delete", kind, times=None if persistent else 1)
    client.post(f"/c/{booking.cancel_token}")  # the last guest cancels: the event goes
    run_until_settled(run_jobs)
    deletes = google.calls(f"/calendar/v3/calendars/primary/events/{event_id}", "DELETE")
    meeting = issuing.meeting_for(slot.id)
    alerts = [m for m in smtp.to(host.email) if "削除できませんでした" in m["Subject"]]
    if not persistent:  # one refusal, then Google deletes it: nobody hears of it
        assert meeting.status == MeetingStatus.DELETED and live_events(google) == [] and alerts == []
        return
    assert len(deletes) > 1  # retried, not given up after one
    assert meeting.status == MeetingStatus.DELETE_FAILED and meeting.failure is not None
    [alert] = alerts
    assert alert["Subject"] == "【要対応】Google Meet上のミーティングを削除できませんでした（削除レッスン）"
    assert "Google Meetのミーティングを、Google Meet上で削除できませんでした" in body_text(alert)
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert "Google Meetで削除できませんでした" in page and "もう一度削除する" in page
    for shown in (page, body_text(alert), body_html(alert)):  # the host reads why, never Google's reply
        assert "HTTP" not in shown and "backendError" not in shown and "rateLimitExceeded" not in shown


def test_turning_google_meet_off_deletes_its_events_and_leaves_zoom_alone(
        client, login, link_google, link_zoom, make_host, make_service, make_slot, make_booking, run_jobs, google,
        zoom):
    host = make_host()
    link_zoom(host)
    client.post("/logout", form_url="/dashboard")
    link_google(host)
    meet_slot = make_slot(meet_service(make_service, host, title="Meet講座"), starts_in=timedelta(days=2))
    zoom_slot = make_slot(make_service(host, title="Zoom講座"), starts_in=timedelta(days=2))
    make_booking(meet_slot)
    make_booking(zoom_slot)
    run_jobs()
    page = client.get("/settings/google_meet/off").get_data(as_text=True)
    assert "Google Meet連携をOFFにしますか？" in page and "Meet講座" in page and "Zoom講座" not in page
    done = client.post("/settings/google_meet/off", form_url="/settings/google_meet/off").get_data(as_text=True)
    assert "Google Meet連携をOFFにしました" in done
    db.session.rollback()
    assert live_events(google) == [] and db.session.query(GoogleConnection).count() == 0
    assert issuing.meeting_for(zoom_slot.id).status == MeetingStatus.ISSUED  # Zoom's stays
    assert [m for m in zoom.meetings() if not m["deleted"]]


def test_host_links_google_meet_creates_a_service_and_the_guest_gets_a_meet_link(
        page, live_server, make_host, run_jobs, smtp, google):
    host = make_host(email="meet@example.com", name="田中 先生")
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("link", name="連携設定").click()
    expect(page.get_by_role("heading", name="Google Meet連携")).to_be_visible()
    page.get_by_role("button", name="Google Meetと連携する（ONにする）").click()
    # The emulator's consent page: the free personal test user.
    page.locator("form", has_text="free@gmail.test").get_by_role("button").first.click()
    expect(page.get_by_text("Google Meetと連携しました")).to_be_visible()
    expect(page.locator("#google").get_by_text("ON（連携中）")).to_be_visible()

    page.goto("/services/new")
    page.get_by_label("サービスタイプ").select_option("online")
    page.get_by_label("タイトル").fill("Meetで書道")
    page.get_by_label("所要時間（分）").fill("45")
    page.get_by_label("定員（1枠あたり）").fill("1")
    page.get_by_label("Google Meet（URLを自動発行して予約者に送信）").check()
    page.get_by_role("button", name="保存する").click()
    page.wait_for_url(re.compile(r"/services/\d+$"))
    starts = (clock.now() + timedelta(hours=5)).astimezone(ZoneInfo("Asia/Tokyo"))
    page.get_by_label("開催日時").fill(starts.strftime("%Y-%m-%dT%H:00"))
    page.get_by_role("button", name="追加する").click()
    expect(page.get_by_text("開催日時を追加しました")).to_be_visible()
    public_url = page.locator("a[target=_blank]").first.get_attribute("href")

    page.context.clear_cookies()
    page.goto(public_url)
    expect(page.get_by_text("オンライン（Google Meet）")).to_be_visible()
    page.get_by_label(re.compile(f"{starts.month}月{starts.day}日")).first.check()
    page.get_by_label("お名前").fill("佐藤 一郎")
    page.get_by_label("メールアドレス").fill("ichiro@example.com")
    page.get_by_role("button", name="申し込み内容を確認する").click()
    page.get_by_role("button", name="この内容で申し込む").click()
    expect(page.get_by_text("お申し込みが完了しました")).to_be_visible()

    run_jobs()  # the confirmation, the issue job, then the URL email (the lesson is within 24 hours)
    run_jobs()
    url_mail = next(m for m in smtp.wait_for(2) if m["Subject"] == "【参加URLのご案内】Meetで書道")
    join = re.search(r"https?://\S+/j/\S+", body_text(url_mail)).group(0)
    # The guest's stable link leads to the Meet link the emulator issued for the slot.
    response = page.request.get(f"{join}/go", max_redirects=0)
    assert response.status == 302 and re.fullmatch(r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}",
                                                   response.headers["location"])
    assert "Google Meetで参加する" in body_html(url_mail)


def test_make_runs_addresses_are_ones_a_browser_opens(browser):
    """The consent pages a host's browser is sent to in ``make run`` must be on ports browsers allow
    (Chromium refuses SIP's 5060 with ERR_UNSAFE_PORT, so the Google emulator cannot live there)."""
    from urllib.parse import urlsplit

    from config import Config

    ports = {urlsplit(getattr(Config, name)).port for name in
             ("APP_BASE_URL", "ZOOM_OAUTH_BASE_URL", "GOOGLE_AUTHORIZE_URL")}
    ports |= {int(port) for port in re.findall(r"--port (\d+)", (Path(__file__).parent.parent / "Procfile").read_text())}
    page = browser.new_page()
    for port in sorted(ports):
        try:
            page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
        except Exception as exc:  # nothing listens here now: refused, which is fine; unsafe is not
            assert "ERR_UNSAFE_PORT" not in str(exc), port
    page.close()
