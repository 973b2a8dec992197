"""The Zoom path keeps every promise (issue 15): relinking, deletes Zoom refused, URL emails that
wait for their meeting instead of saying "sent", and the plan read only when it matters.

Through the real parts: the emulator (with its faults), RQ's worker, the outbox and SMTP.
"""
from datetime import datetime, timedelta, timezone

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app import clock
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus, MeetingStatus
from app.models import LinkStatus
from app.queue import QUEUE_NAMES, get_queue
from app.meetings import alerts, issuing, planning, retry, switch, timing  # noqa: F401
from app.zoom import link
from tests.conftest import body_html, body_text


@pytest.fixture
def short_zoom_timeout(monkeypatch):
    """The client gives up after 1 s (production: 10 s), so the emulator's ``timeout`` fault (1.5 s) is one."""
    real_api_for = link.api_for

    def api_for(connection_id):
        api = real_api_for(connection_id)
        api.timeout = 1.0
        return api

    monkeypatch.setattr(link, "api_for", api_for)


def release_scheduled(until=None) -> int:
    """Enqueue RQ's scheduled jobs (Retry back-offs, enqueue_in/at) due by ``until`` (default: all)."""
    moved = 0
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        registry = ScheduledJobRegistry(queue=queue)
        due = (registry.get_jobs_to_schedule(int(until.timestamp())) if until is not None
               else registry.get_job_ids())
        for job_id in due:
            job = Job.fetch(job_id, connection=queue.connection)
            registry.remove(job)
            queue.enqueue_job(job)
            moved += 1
    return moved


def run_until_settled(run_jobs, until=None, rounds: int = 20) -> None:
    """Run the queued jobs and every retry they schedule (by ``until``), and the outbox, until nothing is left."""
    for _ in range(rounds):
        run_jobs()
        sent = outbox.send_due()
        db.session.rollback()
        if not release_scheduled(until) and not sent and not any(len(get_queue(n)) for n in QUEUE_NAMES):
            return
    raise AssertionError("the jobs never settled")


def subjects_to(smtp, address):
    return [m["Subject"] for m in smtp.to(address)]


def linked_host(make_host, link_zoom, email="basic@zoom.test"):
    host = make_host(name="山田 花子")
    link_zoom(host, email)  # logs the test client in as the host
    return host


def relink(client, link_zoom, host):
    """Link again through the real OAuth flow (``link_zoom`` logs in first)."""
    client.post("/logout", form_url="/dashboard")
    link_zoom(host)


# --- 1. OFF → ON → backfill: every guest gets one new URL email, for the new meeting ---------------

def test_off_then_on_then_backfill_sends_each_guest_one_new_url_email(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="夜ヨガ", capacity=5), starts_in=timedelta(days=2))
    guests = [make_booking(slot, email=f"yoga{i}@example.com") for i in (1, 2)]
    run_jobs()
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    run_until_settled(run_jobs)
    old = issuing.meeting_for(slot.id)
    old_zoom_id, old_password = int(old.external_id), old.password
    for guest in guests:
        assert subjects_to(smtp, guest.guest_email).count("【参加URLのご案内】夜ヨガ") == 1

    assert client.post("/settings/zoom/off").status_code == 200
    clock.advance(timedelta(minutes=1))
    relink(client, link_zoom, host)
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "連携前のご予約（2件）" in page
    response = client.post("/settings/zoom/backfill", form_url="/settings/zoom")
    assert response.status_code == 302  # was a 500: the old URL emails' keys
    run_until_settled(run_jobs)

    new = issuing.meeting_for(slot.id)
    assert new.status == MeetingStatus.ISSUED and int(new.external_id) != old_zoom_id
    assert old_zoom_id in {m["id"] for m in zoom.meetings() if m["deleted"]}
    for guest in guests:
        urls = [m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLのご案内】夜ヨガ"]
        assert len(urls) == 2  # the first link's, and exactly one new one
        assert new.password in body_text(urls[1]) and old_password not in body_text(urls[1])
        assert client.get(f"/j/{guest.join_token}/go").headers["Location"] == new.join_url


# --- 2. A meeting Zoom did not delete is retried, shown, and can be deleted by hand ----------------

DELETE_FAULTS = {"500": {}, "xml": {"status": 500}, "429_per_second": {"retry_after": 1},
                 "timeout": {"seconds": 1.5}}


@pytest.mark.parametrize("kind", list(DELETE_FAULTS))
def test_a_delete_zoom_keeps_refusing_is_retried_then_shown_with_a_retry_button_and_one_alert(
        kind, client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom,
        short_zoom_timeout):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="削除レッスン"), starts_in=timedelta(days=3))
    make_booking(slot)
    run_jobs()
    zoom_id = int(issuing.meeting_for(slot.id).external_id)
    zoom.inject_fault(kind, path=f"^/v2/meetings/{zoom_id}$", method="DELETE", times=None, **DELETE_FAULTS[kind])

    assert client.post(f"/slots/{slot.id}/cancel").status_code == 302
    run_until_settled(run_jobs)
    deletes = zoom.calls(f"/v2/meetings/{zoom_id}", method="DELETE")
    assert len(deletes) > 1  # retried, not given up after one
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.DELETE_FAILED
    if kind != "timeout":  # (a timed-out DELETE may have worked: we cannot know, so we do not say it did)
        assert zoom_id not in {m["id"] for m in zoom.meetings() if m["deleted"]}  # still live on Zoom

    alerts = [m for m in smtp.to(host.email)
              if m["Subject"] == "【要対応】Zoom上のミーティングを削除できませんでした（削除レッスン）"]
    assert len(alerts) == 1
    assert str(zoom_id) in body_text(alerts[0])
    for shown in (client.get(f"/slots/{slot.id}").get_data(as_text=True),
                  client.get("/settings/zoom").get_data(as_text=True), body_html(alerts[0])):
        assert "Zoomで削除できませんでした" in shown or "削除できませんでした" in shown
        assert "HTTP" not in shown and "&lt;?xml" not in shown and "<?xml" not in shown
    assert "もう一度削除する" in client.get(f"/slots/{slot.id}").get_data(as_text=True)

    still = client.post(f"/slots/{slot.id}/zoom/delete", form_url=f"/slots/{slot.id}", follow_redirects=True)
    assert "まだ削除できませんでした" in still.get_data(as_text=True)
    zoom.clear_faults()
    done = client.post(f"/slots/{slot.id}/zoom/delete", form_url=f"/slots/{slot.id}", follow_redirects=True)
    assert "Zoom上のミーティングを削除しました" in done.get_data(as_text=True)
    db.session.rollback()
    assert issuing.meeting_for(slot.id).status == MeetingStatus.DELETED
    assert zoom_id in {m["id"] for m in zoom.meetings() if m["deleted"]}
    run_until_settled(run_jobs)
    assert len([m for m in smtp.to(host.email) if "削除できませんでした" in m["Subject"]]) == 1  # one alert


def test_a_delete_that_fails_once_is_retried_and_nobody_is_alerted(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host), starts_in=timedelta(days=3))
    booking = make_booking(slot)
    run_jobs()
    zoom_id = int(issuing.meeting_for(slot.id).external_id)
    zoom.inject_fault("503", path="^/v2/meetings/", method="DELETE", times=1)
    client.post(f"/c/{booking.cancel_token}")  # the last guest cancels
    run_until_settled(run_jobs)
    assert issuing.meeting_for(slot.id).status == MeetingStatus.DELETED
    assert zoom_id in {m["id"] for m in zoom.meetings() if m["deleted"]}
    assert not [m for m in smtp.to(host.email) if "削除できませんでした" in m["Subject"]]


def test_turning_off_while_zoom_fails_deletes_keeps_the_grant_until_the_retries_delete_them(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="OFFレッスン"), starts_in=timedelta(days=3))
    make_booking(slot)
    run_jobs()
    zoom_id = int(issuing.meeting_for(slot.id).external_id)
    zoom.inject_fault("xml", path="^/v2/meetings/", method="DELETE", times=2, status=500)
    done = client.post("/settings/zoom/off").get_data(as_text=True)
    assert "Zoomが応答しなかったため、削除できませんでした。" in done
    assert "<?xml" not in done and "&lt;?xml" not in done and "HTTP" not in done
    db.session.rollback()
    assert link.connection_for(host.id) is None  # OFF at once
    assert zoom.calls("/oauth/revoke") == []  # the grant still has a meeting to delete
    run_until_settled(run_jobs)
    assert zoom_id in {m["id"] for m in zoom.meetings() if m["deleted"]}
    assert len(zoom.calls("/oauth/revoke")) == 1 and link.grant_for(host.id) is None
    assert "Zoomで削除できなかったミーティング" not in client.get("/settings/zoom").get_data(as_text=True)


def test_a_meeting_zoom_did_not_delete_serves_again_when_the_slot_is_booked_again(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host), starts_in=timedelta(days=3))
    booking = make_booking(slot)
    run_jobs()
    first = int(issuing.meeting_for(slot.id).external_id)
    zoom.inject_fault("500", path="^/v2/meetings/", method="DELETE", times=None)
    client.post(f"/c/{booking.cancel_token}")
    run_until_settled(run_jobs)
    assert issuing.meeting_for(slot.id).status == MeetingStatus.DELETE_FAILED
    make_booking(slot, email="again@example.com")
    run_until_settled(run_jobs)
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and int(meeting.external_id) == first
    assert len(zoom.calls("/v2/users/me/meetings", method="POST")) == 1  # no second meeting


# --- 3. "URL sent" only when it was; the URL follows on its own ------------------------------------

def at(moment: datetime, zoom) -> None:
    clock.travel_to(moment)
    zoom.set_clock(moment)


@pytest.fixture
def zoom_clock(zoom):
    yield
    zoom.set_clock(None)  # the emulator is shared by the session


def test_late_booking_at_the_daily_limit_is_told_the_truth_and_gets_the_url_after_the_reset(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom, zoom_clock):
    at(datetime(2030, 6, 1, 20, 0, tzinfo=timezone.utc), zoom)  # 05:00 in Tokyo
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="朝活"), starts_in=timedelta(hours=7))  # 12:00 JST: a late booking
    zoom.inject_fault("429_daily", path="^/v2/users/me/meetings$", method="POST", times=None,
                      retry_after="next_midnight")
    guest = make_booking(slot, email="early@example.com")
    run_until_settled(run_jobs, until=clock.now())
    at(clock.now() + timing.NOTICE_GATHERS_LATE_BOOKINGS, zoom)  # the host notice gathers later bookings first
    run_until_settled(run_jobs, until=clock.now())

    assert "【参加URLのご案内】朝活" not in subjects_to(smtp, guest.guest_email)
    [waiting] = [m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLの準備中】朝活"]
    assert f"/j/{guest.join_token}" in body_text(waiting) and "自動でお送りします" in body_text(waiting)
    notices = subjects_to(smtp, host.email)
    assert not any("予約者にZoomのURLをお送りしました" in s for s in notices)
    [notice] = [m for m in smtp.to(host.email)
                if m["Subject"] == "【要確認】ZoomのURLをまだお送りできていない予約者がいます（朝活）"]
    assert "early@example.com" in body_text(notice) and "未送信" in body_text(notice)
    assert "1日の発行上限" in body_text(notice) and "上限は09:00に戻ります" in body_text(notice)
    [trouble] = [m for m in smtp.to(host.email) if m["Subject"] == "【要対応】ZoomのURLを用意できませんでした（朝活）"]
    assert "上限は09:00に戻ります" in body_text(trouble)
    slot_page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert "URL準備中" in slot_page and "waiting:" not in slot_page
    off = client.get("/settings/zoom/off").get_data(as_text=True)
    assert "URLを受け取った予約者" not in off  # "not ready" is not a URL

    zoom.clear_faults()  # Zoom's budget comes back at 00:00 UTC
    at(datetime(2030, 6, 2, 0, 1, tzinfo=timezone.utc), zoom)
    run_until_settled(run_jobs, until=clock.now())
    urls = [m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLのご案内】朝活"]
    assert len(urls) == 1
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and meeting.password in body_text(urls[0])
    assert len([m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLの準備中】朝活"]) == 1


def test_relinking_sends_the_waiting_url_emails_at_once(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="再連携レッスン"), starts_in=timedelta(hours=5))
    connection = link.connection_for(host.id)
    connection.status = LinkStatus.NEEDS_RELINK
    db.session.commit()
    guest = make_booking(slot, email="patient@example.com")
    run_until_settled(run_jobs, until=clock.now())
    assert subjects_to(smtp, guest.guest_email).count("【参加URLの準備中】再連携レッスン") == 1
    assert "【参加URLのご案内】再連携レッスン" not in subjects_to(smtp, guest.guest_email)

    relink(client, link_zoom, host)
    run_until_settled(run_jobs, until=clock.now())  # no clock move: it goes now, not at the next look
    assert subjects_to(smtp, guest.guest_email).count("【参加URLのご案内】再連携レッスン") == 1


def test_a_url_email_still_waiting_at_the_start_is_never_sent_after_it(
        client, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host, title="開始後"), starts_in=timedelta(hours=2))
    zoom.inject_fault("500", path="^/v2/users/me/meetings$", method="POST", times=None)
    guest = make_booking(slot, email="late@example.com")
    run_until_settled(run_jobs)
    clock.travel_to(slot.starts_at + timedelta(minutes=1))
    zoom.clear_faults()
    run_until_settled(run_jobs)
    assert "【参加URLのご案内】開始後" not in subjects_to(smtp, guest.guest_email)
    url = db.session.query(Delivery).filter_by(kind="meeting_url", booking_id=guest.id).one()
    assert url.status == DeliveryStatus.CANCELLED


# --- also seen: GET /users/me only at link time, at each create, and at most hourly otherwise -------

def plan_reads(zoom) -> int:
    return len([c for c in zoom.calls("/v2/users/me", method="GET") if c["path"] == "/v2/users/me"])


def test_the_plan_is_read_at_link_time_at_each_create_and_at_most_hourly(
        make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, zoom):
    host = linked_host(make_host, link_zoom)
    slot = make_slot(make_service(host), starts_in=timing.PREFLIGHT_LEAD + timedelta(minutes=30))
    make_booking(slot)
    make_booking(slot)
    run_jobs()
    assert plan_reads(zoom) == 2  # linking, the one create
    clock.advance(timedelta(minutes=30))  # the pre-flight, half an hour after the create
    assert planning.run_preflights() == 1
    assert plan_reads(zoom) == 2
    later = make_slot(make_service(host), starts_in=timing.PREFLIGHT_LEAD + timedelta(hours=3))
    make_booking(later)
    run_jobs()
    clock.advance(timedelta(hours=3))
    conn = link.connection_for(host.id)
    conn.plan_checked_at = clock.now() - timedelta(hours=2)  # read more than an hour ago
    db.session.commit()
    zoom.clear_calls()
    assert planning.run_preflights() == 1
    assert plan_reads(zoom) == 1


def test_the_host_notice_waits_ten_minutes_at_most_for_the_guests_emails(
        make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = linked_host(make_host, link_zoom)
    host.notify_bookings = False  # this test counts the URL emails and notices: no 「新しいご予約」 notice
    db.session.commit()
    slot = make_slot(make_service(host, title="再送待ち"), starts_in=timedelta(hours=3))  # URL email due at once
    guest = make_booking(slot, email="slow-mx@example.com")
    url = db.session.query(Delivery).filter_by(kind="meeting_url", booking_id=guest.id).one()
    # Its first attempt failed and SMTP retries it in an hour: the guest's email is still on its way.
    url.due_at, url.last_error = clock.now() + timedelta(hours=1), "SMTPServerDisconnected: Connection unexpectedly closed"
    db.session.commit()
    run_jobs()
    outbox.send_due()
    assert not [m for m in smtp.to(host.email) if "再送待ち" in m["Subject"]]  # waits to tell what became of it
    for _ in range(6):  # twelve minutes, a look every two
        clock.advance(timedelta(minutes=2))
        outbox.send_due()
    [notice] = [m for m in smtp.to(host.email) if "再送待ち" in m["Subject"]]
    assert notice["Subject"] == "【要確認】ZoomのURLをまだお送りできていない予約者がいます（再送待ち）"
    assert "slow-mx@example.com" in body_text(notice) and "送信中" in body_text(notice)
