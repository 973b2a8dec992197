"""Meeting issuance and the URL email 24 hours before the start, through RQ, SMTP and the emulator."""
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from flask_babel import refresh
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app import clock
from app.booking import booking as bookings
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus, MeetingStatus, Meeting
from app.models import LinkStatus, MeetingFailure
from app.queue import get_queue
from app.meetings import alerts, issuing, planning, retry, switch, timing  # noqa: F401
from app.zoom import link
from app.zoom.provider import meeting_body
from tests.conftest import body_html, body_text


@pytest.fixture
def zoom_host(make_host, link_zoom):
    """A host linked to the emulator's Basic test user."""
    def make(zoom_email="basic@zoom.test"):
        host = make_host(name="山田 花子")
        link_zoom(host, zoom_email)
        return host
    return make


def creates(zoom):
    return [c for c in zoom.calls("/v2/users/me/meetings", method="POST")]


def subjects(smtp):
    return [m["Subject"] for m in smtp.messages]


def scheduled_times() -> list[float]:
    """When RQ will run each job it holds back: the ScheduledJobRegistry's scores (Unix time, whole seconds)."""
    queue = get_queue()
    return [score for _, score in queue.connection.zrange(ScheduledJobRegistry(queue=queue).key, 0, -1,
                                                          withscores=True)]


def run_jobs_and_retries(run_jobs, rounds: int = 10) -> None:
    """Run the queued jobs, then every retry RQ scheduled, at once (RQ waits in real time), until none is left."""
    queue = get_queue()
    registry = ScheduledJobRegistry(queue=queue)
    run_jobs()
    for _ in range(rounds):
        job_ids = registry.get_job_ids()
        if not job_ids:
            return
        for job_id in job_ids:
            job = Job.fetch(job_id, connection=queue.connection)
            registry.remove(job)
            queue.enqueue_job(job)
        run_jobs()
    raise AssertionError("the retries never ended")


def trouble_alerts(smtp, title):
    return [m for m in smtp.messages if m["Subject"] == f"【要対応】ZoomのURLを用意できませんでした（{title}）"]


def zoom_state(page: str) -> str:
    """The Zoom state of the (first) slot on a service page."""
    start = page.index('class="zoom-state"')
    return page[start:page.index("</div>", start)]


def test_full_path_url_email_exactly_24h_before(client, zoom_host, make_service, make_slot, make_booking,
                                                run_jobs, smtp, zoom, live_server):
    host = zoom_host()
    host.notify_bookings = False  # this test counts the URL emails and notices: no 「新しいご予約」 notice
    db.session.commit()
    service = make_service(host, title="90分ヨガ", duration_minutes=90, host_notes="マットをご用意ください")
    slot = make_slot(service, starts_in=timedelta(days=2))
    booking = make_booking(slot, name="佐藤 一郎", email="ichiro@example.com")
    run_jobs()
    assert subjects(smtp) == ["【お申し込み完了】90分ヨガ"]
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and len(creates(zoom)) == 1
    body = creates(zoom)[0]["json"]
    assert body["start_time"].endswith("Z") and body["timezone"] == "Asia/Tokyo"
    assert body["settings"]["join_before_host"] is False and len(body["password"]) <= 10

    clock.travel_to(slot.starts_at - timedelta(hours=24, seconds=1))
    assert outbox.send_due() == 0
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    assert outbox.send_due() == 1  # the guest's URL email; the host notice waits to tell what became of it
    clock.advance(timedelta(minutes=1))
    assert outbox.send_due() == 1
    url_mail = next(m for m in smtp.messages if m["Subject"] == "【参加URLのご案内】90分ヨガ")
    text = body_text(url_mail)
    join_link = f"{live_server}/j/{booking.join_token}"
    assert join_link in text and meeting.password in text
    # Basic host, 90-minute service: it ends at 40 minutes, the host restarts it, the same URL again.
    assert "開始から40分で一度終了します。ホストがミーティングを再開しますので、同じURLからもう一度ご参加ください。" in text
    assert "マットをご用意ください" in text
    [ics] = [part for part in url_mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    calendar = ics.get_content()
    calendar = (calendar.decode() if isinstance(calendar, bytes) else calendar).replace("\r\n ", "")
    assert "ATTENDEE" not in calendar and "90分ヨガ" in calendar
    notice = next(m for m in smtp.messages if m["Subject"].startswith("予約者にZoomのURLをお送りしました"))
    assert "ichiro@example.com" in body_text(notice) and "zak=" not in body_text(notice)
    # The stable link redirects to the current join URL.
    response = client.get(f"/j/{booking.join_token}/go")
    assert response.status_code == 302 and response.headers["Location"] == meeting.join_url


def test_licensed_host_has_no_40_minute_line(zoom_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = zoom_host("licensed@zoom.test")
    slot = make_slot(make_service(host, duration_minutes=90), starts_in=timedelta(hours=3))
    make_booking(slot)
    run_jobs()
    url_mail = next(m for m in smtp.wait_for(2) if "参加URLのご案内" in m["Subject"])
    assert "40分" not in body_text(url_mail)


def test_late_booking_gets_the_url_at_once(zoom_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = zoom_host()
    slot = make_slot(make_service(host, title="直前レッスン"), starts_in=timedelta(hours=3))
    make_booking(slot)
    run_jobs()
    assert "【参加URLのご案内】直前レッスン" in subjects(smtp)


def test_ten_guests_share_one_meeting(zoom_host, make_service, make_slot, make_booking, run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host, capacity=13))
    for n in range(10):
        make_booking(slot, email=f"g{n}@example.com")
    run_jobs()
    assert len(creates(zoom)) == 1
    assert db.session.query(Meeting).count() == 1
    # Once it is issued, later guests queue no issue job at all.
    for n in range(10, 13):
        make_booking(slot, email=f"g{n}@example.com")
    assert [job for job in get_queue().get_jobs() if job.func_name == "app.jobs.issue_meeting"] == []
    run_jobs()
    assert len(creates(zoom)) == 1


def test_meeting_deleted_on_zoom_is_reissued_before_the_url_email(client, zoom_host, make_service, make_slot,
                                                                  make_booking, run_jobs, smtp, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host))
    booking = make_booking(slot)
    run_jobs()
    first = int(issuing.meeting_for(slot.id).external_id)
    zoom.delete_meeting_out_of_band(first)
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    outbox.send_due()
    db.session.rollback()
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and int(meeting.external_id) != first
    assert len(creates(zoom)) == 2
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == meeting.join_url


def test_crashed_attempt_is_reconciled_not_duplicated(zoom_host, make_service, make_slot, zoom):
    host = zoom_host()
    service = make_service(host)
    slot = make_slot(service)
    # A previous attempt recorded ISSUING, Zoom created the meeting, and the worker died.
    conn = link.connection_for(host.id)
    row = Meeting(slot_id=slot.id, host_id=host.id, status=MeetingStatus.ISSUING, issue_key="k" * 32, attempts=1)
    db.session.add(row)
    db.session.commit()
    created = link.api_for(conn.id).create_meeting(meeting_body(issuing.spec_for(slot, "k" * 32)))
    bookings.book(service, slot.id, "客", "c@example.com")
    zoom.clear_calls()
    meeting = issuing.issue_meeting(slot.id)
    assert int(meeting.external_id) == created.id
    assert creates(zoom) == []


def test_per_second_429_is_retried_after_retry_after(zoom_host, make_service, make_slot, make_booking, zoom, app):
    host = zoom_host()
    slot = make_slot(make_service(host))
    make_booking(slot)
    get_queue().empty()
    zoom.inject_fault("429_per_second", path="/v2/users/me/meetings", method="POST", times=1, retry_after=7)
    before = time.time()
    assert issuing.issue_or_defer(slot.id) == "retry"
    after = time.time()
    [retry_at] = scheduled_times()
    assert before + 7 - 1 < retry_at <= after + 7  # Zoom's 7 seconds (RQ keeps whole seconds), not RQ's back-off
    meeting = issuing.meeting_for(slot.id)
    assert meeting.failure == MeetingFailure.UNAVAILABLE and "HTTP 429" in meeting.error_detail
    assert issuing.issue_or_defer(slot.id) == "issued"


def test_5xx_is_retried_by_rq_then_succeeds(zoom_host, make_service, make_slot, make_booking, run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=1)
    make_booking(slot)
    run_jobs()
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUING and meeting.failure == MeetingFailure.UNAVAILABLE
    assert len(ScheduledJobRegistry(queue=get_queue())) == 1  # ZOOM_RETRY's back-off
    run_jobs_and_retries(run_jobs)
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and meeting.failure is None and meeting.error_detail == ""
    assert len([c for c in creates(zoom) if c["status"] == 201]) == 1
    assert db.session.query(Delivery).filter_by(kind="meeting_trouble").count() == 0


def test_persistent_fault_alerts_the_host_once_for_the_slot(zoom_host, make_service, make_slot, make_booking,
                                                            run_jobs, smtp, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host, title="障害レッスン", capacity=5), starts_in=timedelta(days=3))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=None)
    guests = [make_booking(slot, email=f"guest{i}@example.com") for i in (1, 2)]
    run_jobs_and_retries(run_jobs)  # the slot's issue job, until RQ gives up
    clock.travel_to(slot.starts_at - timing.PREFLIGHT_LEAD)
    assert planning.run_preflights() == 1
    run_jobs()
    clock.travel_to(slot.starts_at - timing.URL_LEAD)
    outbox.send_due()
    outbox.send_due()  # anything written while the URL emails were rendered
    [alert] = trouble_alerts(smtp, "障害レッスン")
    assert "Zoomが応答しなかったため" in body_text(alert)
    assert db.session.query(Delivery).filter_by(kind="meeting_trouble").count() == 1
    for guest in guests:  # told it is being prepared, with their page; the URL email waits for a meeting
        [mail] = [m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLの準備中】障害レッスン"]
        assert "自動でお送りします" in body_text(mail) and f"/j/{guest.join_token}" in body_text(mail)
        url = db.session.query(Delivery).filter_by(kind="meeting_url", booking_id=guest.id).one()
        assert url.status == DeliveryStatus.PENDING and url.last_error == "waiting:zoom_unavailable"


def issue_jobs():
    return [job for job in get_queue().get_jobs() if job.func_name == "app.jobs.issue_meeting"]


def test_a_busy_slots_bookings_share_one_issue_job(zoom_host, make_service, make_slot, make_booking, run_jobs,
                                                   zoom):
    host = zoom_host()
    slot = make_slot(make_service(host, capacity=5))
    for i in range(4):
        make_booking(slot, email=f"guest{i}@example.com")
    assert len(issue_jobs()) == 1
    run_jobs()
    assert issuing.meeting_for(slot.id).status == MeetingStatus.ISSUED and len(creates(zoom)) == 1
    assert db.session.query(Delivery).filter_by(kind="meeting_url").count() == 4


def test_bookings_while_issuing_is_retried_add_no_create_attempts(zoom_host, make_service, make_slot,
                                                                  make_booking, run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host, capacity=5), starts_in=timedelta(days=3))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=None)
    make_booking(slot, email="first@example.com")
    run_jobs()
    assert len(ScheduledJobRegistry(queue=get_queue())) == 1  # ZOOM_RETRY's back-off
    for i in range(3):
        make_booking(slot, email=f"later{i}@example.com")
    assert issue_jobs() == []  # the scheduled retry covers them
    run_jobs_and_retries(run_jobs)
    assert len(creates(zoom)) == 1 + retry.TOOL_RETRY.max  # one job's attempts, not four jobs'
    assert issuing.meeting_for(slot.id).status == MeetingStatus.FAILED
    zoom.clear_faults()
    make_booking(slot, email="after@example.com")  # given up: a new booking tries again
    assert len(issue_jobs()) == 1
    run_jobs()
    assert issuing.meeting_for(slot.id).status == MeetingStatus.ISSUED


def test_issuing_that_runs_out_of_retries_ends_failed_and_a_later_attempt_issues_it(
        client, zoom_host, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = zoom_host()
    service = make_service(host, title="朝ヨガ")
    slot = make_slot(service, starts_in=timedelta(days=3))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=None)
    make_booking(slot)
    run_jobs_and_retries(run_jobs)
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.FAILED and meeting.failure == MeetingFailure.UNAVAILABLE
    assert "HTTP 500" in meeting.error_detail  # what Zoom said, for staff
    state = zoom_state(client.get(f"/services/{service.id}").get_data(as_text=True))
    assert "URL未発行" in state and "Zoomが応答しなかったため、発行できていません。" in state and "発行中" not in state

    zoom.clear_faults()
    clock.travel_to(slot.starts_at - timing.PREFLIGHT_LEAD)
    planning.run_preflights()  # the pre-flight issues it
    db.session.rollback()
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED and meeting.failure is None
    assert len([m for m in zoom.meetings() if not m["deleted"]]) == 1
    assert "URL発行済み" in zoom_state(client.get(f"/services/{service.id}").get_data(as_text=True))
    clock.travel_to(slot.starts_at - timing.URL_LEAD)
    outbox.send_due()
    assert "【参加URLのご案内】朝ヨガ" in subjects(smtp)


def test_a_new_cause_or_the_same_one_after_issuing_alerts_the_host_again(
        zoom_host, make_service, make_slot, make_booking, run_jobs, smtp, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host, title="夕方クラス", capacity=5), starts_in=timedelta(days=3))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=None)
    make_booking(slot, email="g1@example.com")
    make_booking(slot, email="g2@example.com")
    run_jobs_and_retries(run_jobs)  # alert 1
    zoom.clear_faults()
    clock.travel_to(slot.starts_at - timing.PREFLIGHT_LEAD)
    planning.run_preflights()  # issued: the trouble is over
    db.session.rollback()
    zoom.delete_meeting_out_of_band(int(issuing.meeting_for(slot.id).external_id))
    zoom.inject_fault("500", path="/v2/users/me/meetings", method="POST", times=None)
    clock.travel_to(slot.starts_at - timing.URL_LEAD)
    outbox.send_due()  # both URL emails find it gone and cannot re-issue it: alert 2, once
    outbox.send_due()
    assert len(trouble_alerts(smtp, "夕方クラス")) == 2

    db.session.rollback()
    assert alerts.alert_host(slot, MeetingFailure.UNAVAILABLE) is None  # still the same trouble
    assert alerts.alert_host(slot, MeetingFailure.LINK_BROKEN) is not None  # a new cause


def test_an_english_host_reads_why_in_english(client, make_host, link_zoom, make_service, make_slot, make_booking,
                                               run_jobs, smtp):
    host = make_host(name="Alex Smith")
    host.locale = "en"
    db.session.commit()
    link_zoom(host)
    service = make_service(host, title="Morning English")
    slot = make_slot(service)
    conn = link.connection_for(host.id)
    conn.status = LinkStatus.NEEDS_RELINK  # the grant died before the first booking
    db.session.commit()
    make_booking(slot)
    run_jobs()
    assert issuing.meeting_for(slot.id).failure == MeetingFailure.LINK_BROKEN
    [alert] = [m for m in smtp.to(host.email) if m["Subject"] == "[Action required] Could not prepare a Zoom link "
                                                                  "(Morning English)"]
    english = "The Zoom connection is broken. Until you reconnect, your guests will not receive their links."
    assert english in body_text(alert) and english in body_html(alert)
    refresh()  # the test's one app context would keep the locale of the earlier (Japanese) requests
    state = zoom_state(client.get(f"/services/{service.id}").get_data(as_text=True))
    assert "No link yet" in state and english in state and "Zoomとの連携" not in state


def test_daily_limit_defers_to_after_0900_jst(zoom_host, make_service, make_slot, make_booking, zoom):
    # 01:30 on 5 March in Tokyo (16:30 UTC on the 4th), on our clock and Zoom's.
    moment = datetime(2031, 3, 4, 16, 30, tzinfo=timezone.utc)
    clock.travel_to(moment)
    zoom.set_clock(moment)
    try:
        host = zoom_host()
        slot = make_slot(make_service(host), starts_in=timedelta(days=3))
        make_booking(slot)
        zoom.inject_fault("429_daily", path="/v2/users/me/meetings", method="POST", times=1,
                          retry_after="next_midnight")
        assert issuing.issue_or_defer(slot.id) == "deferred"
        [retry_at] = scheduled_times()
        # Zoom's budget comes back at 09:00 JST the same morning; the job runs a minute after.
        assert retry_at == datetime(2031, 3, 5, 9, 1, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
        assert link.budget_left(link.connection_for(host.id).id) == 0
    finally:
        zoom.set_clock(None)


def test_dead_token_at_send_time_tells_guest_the_url_is_coming_and_alerts_host(
        zoom_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = zoom_host()
    slot = make_slot(make_service(host, title="朝のレッスン", host_notes="予備URL: https://meet.example.com/z"))
    make_booking(slot)
    conn = link.connection_for(host.id)
    conn.status = LinkStatus.NEEDS_RELINK  # the grant died after booking
    conn.broken_reason = "test"
    db.session.commit()
    run_jobs()
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    outbox.send_due()
    outbox.send_due()  # the host alert and the guest's notice written during the first batch
    guest = next(m for m in smtp.messages if m["Subject"] == "【参加URLの準備中】朝のレッスン")
    assert "自動でお送りします" in body_text(guest) and "https://meet.example.com/z" in body_text(guest)
    assert any("ZoomのURLを用意できませんでした" in s for s in subjects(smtp))


def test_off_after_issuing_means_no_url_email(client, zoom_host, make_service, make_slot, make_booking, run_jobs,
                                             smtp, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host))
    booking = make_booking(slot)
    run_jobs()
    client.post("/settings/zoom/off")
    clock.travel_to(slot.starts_at - timedelta(hours=23))
    outbox.send_due()
    assert not any("URL" in s for s in subjects(smtp))
    page = client.get(f"/j/{booking.join_token}").get_data(as_text=True)
    assert "オンライン開催を取りやめた" in page


def test_booking_without_link_gets_no_meeting(make_host, make_service, make_slot, make_booking, run_jobs, zoom):
    slot = make_slot(make_service(make_host()))
    make_booking(slot)
    run_jobs()
    assert creates(zoom) == [] and db.session.query(Meeting).count() == 0
    assert db.session.query(Delivery).filter_by(kind="meeting_url").count() == 0


def test_moving_slot_patches_meeting_and_moves_the_url_email(client, zoom_host, make_service, make_slot,
                                                             make_booking, run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host), starts_in=timedelta(days=3))
    make_booking(slot)
    run_jobs()
    client.post(f"/slots/{slot.id}/move", {"starts_at": "2031-02-01T10:00"})
    run_jobs()
    [patch] = zoom.calls("/v2/meetings/", method="PATCH")
    assert patch["json"]["start_time"] == "2031-02-01T01:00:00Z"
    db.session.rollback()
    due = db.session.query(Delivery).filter_by(kind="meeting_url").one().due_at
    assert due.isoformat() == "2031-01-31T01:00:00+00:00"


def test_last_guest_cancelling_deletes_the_meeting(client, zoom_host, make_service, make_slot, make_booking,
                                                   run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host))
    booking = make_booking(slot)
    run_jobs()
    client.post(f"/c/{booking.cancel_token}")
    run_jobs()
    assert issuing.meeting_for(slot.id).status == MeetingStatus.DELETED
    assert len(zoom.calls("/v2/meetings/", method="DELETE")) == 1
    assert db.session.query(Delivery).filter_by(kind="meeting_url").one().status == DeliveryStatus.CANCELLED


def test_preflight_alerts_the_host_while_there_is_time(zoom_host, make_service, make_slot, make_booking,
                                                       run_jobs, smtp):
    host = zoom_host()
    slot = make_slot(make_service(host, title="夜の講座"), starts_in=timedelta(days=2))
    make_booking(slot)
    run_jobs()
    conn = link.connection_for(host.id)
    conn.status = LinkStatus.NEEDS_RELINK
    db.session.commit()
    clock.travel_to(slot.starts_at - timedelta(hours=27))
    assert planning.run_preflights() == 1
    assert planning.run_preflights() == 0  # once per slot
    run_jobs()
    assert "【要対応】ZoomのURLを用意できませんでした（夜の講座）" in subjects(smtp)


def test_backfill_covers_bookings_made_before_linking(client, make_host, link_zoom, make_service, make_slot,
                                                      make_booking, run_jobs, zoom):
    host = make_host()
    slot = make_slot(make_service(host))
    make_booking(slot)
    link_zoom(host)
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "連携前のご予約（1件）" in page
    client.post("/settings/zoom/backfill", form_url="/settings/zoom")
    run_jobs()
    assert len(creates(zoom)) == 1
    assert db.session.query(Delivery).filter_by(kind="meeting_url").count() == 1


def test_settings_list_exactly_the_bookings_made_before_linking(client, make_host, link_zoom, make_service,
                                                                make_slot, make_booking):
    host = make_host()
    service = make_service(host, capacity=5)
    mixed, cancelled_first, later = (make_slot(service, starts_in=timedelta(days=d)) for d in (2, 3, 4))
    make_booking(mixed, name="連携前 花子")
    bookings.cancel_booking(make_booking(cancelled_first, name="取消 次郎"))
    db.session.commit()
    clock.advance(timedelta(minutes=1))
    link_zoom(host)
    clock.advance(timedelta(minutes=1))
    for slot in (mixed, cancelled_first, later):
        make_booking(slot, name="連携後 三郎")
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "連携前のご予約（1件）" in page and "連携前 花子" in page
    assert "取消 次郎" not in page and "連携後 三郎" not in page


def test_host_start_link_fetches_a_fresh_start_url(client, zoom_host, make_service, make_slot, make_booking,
                                                   run_jobs, zoom):
    host = zoom_host()
    slot = make_slot(make_service(host))
    make_booking(slot)
    run_jobs()
    zoom.clear_calls()
    response = client.get(f"/slots/{slot.id}/zoom/start")
    assert response.status_code == 302 and "zak=" in response.headers["Location"]
    assert len(zoom.calls("/v2/meetings/", method="GET")) == 1
    page = client.get(f"/services/{slot.service_id}").get_data(as_text=True)
    assert "URL発行済み" in page and "ホストとして開始" in page and "予約者には共有しないでください" in page
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)  # the slot's own page: its guests too
    assert "URL発行済み" in page and "ホストとして開始" in page and "URLを再送" in page


def test_late_bookings_a_minute_apart_share_their_host_notice(
        zoom_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = zoom_host()
    host.notify_bookings = False  # this test counts the URL emails and notices: no 「新しいご予約」 notice
    db.session.commit()
    slot = make_slot(make_service(host, title="直前の人気クラス", capacity=10), starts_in=timedelta(hours=3))
    for n in range(3):  # a minute apart, within the URL lead: each URL email goes at once
        make_booking(slot, name=f"生徒{n}", email=f"late{n}@example.com")
        run_jobs()
        outbox.send_due()
        clock.advance(timedelta(minutes=1))
        outbox.send_due()
    clock.advance(timing.NOTICE_GATHERS_LATE_BOOKINGS)
    outbox.send_due()
    notices = [m for m in smtp.to(host.email) if "直前の人気クラス" in m["Subject"]]
    # A late booking's notice waits two minutes for those after it: the first two share one notice
    # (each booking had made its own before), the third comes after it was sent.
    assert [m["Subject"] for m in notices] == ["予約者にZoomのURLをお送りしました（直前の人気クラス）"] * 2
    first, second = (body_text(m) for m in notices)
    assert "late0@example.com" in first and "late1@example.com" in first and "late2@example.com" in second


def _calendar_of(mail) -> str:
    [ics] = [part for part in mail.iter_attachments() if part.get_content_type() == "text/calendar"]
    calendar = ics.get_content()
    return (calendar.decode() if isinstance(calendar, bytes) else calendar).replace("\r\n ", "")


def test_each_guest_of_a_date_gets_a_calendar_entry_with_their_own_link(
        live_server, make_host, link_zoom, make_service, make_slot, make_booking, run_jobs, smtp):
    """The entry is built once per batch for a date; each guest's still carries their own link."""
    host = make_host()
    link_zoom(host, "basic@zoom.test")
    slot = make_slot(make_service(host, title="カレンダー確認"), starts_in=timedelta(days=2))
    guests = [make_booking(slot, name=f"ゲスト{i}", email=f"cal{i}@example.com") for i in range(3)]
    run_jobs()
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    outbox.send_due()
    for guest in guests:
        [mail] = [m for m in smtp.to(guest.guest_email) if m["Subject"] == "【参加URLのご案内】カレンダー確認"]
        lines = _calendar_of(mail).split("\r\n")
        own = f"{live_server}/j/{guest.join_token}"
        assert f"LOCATION:{own}" in lines and f"URL:{own}" in lines
        assert not [line for line in lines if "/j/" in line and own not in line]


@pytest.mark.parametrize("base_length", range(20, 100, 7))
def test_the_shared_calendar_entry_equals_one_built_for_the_guest(app, make_host, make_service, make_slot,
                                                                  base_length):
    """Whatever the site's address length (a fold may fall inside the token), the entry is the one
    built for the guest alone, but for its time stamp."""
    from app.meetings.emails import _ics, ics_for
    from app.models.booking import new_token

    slot = make_slot(make_service(make_host(), host_notes="持ち物: 筆記用具"))
    link = "https://" + "x" * base_length + ".jp/j/" + new_token()

    def stamped_out(ics: bytes) -> list[str]:
        return [line for line in ics.decode().replace("\r\n ", "").split("\r\n") if not line.startswith("DTSTAMP")]

    assert stamped_out(ics_for(slot, link, slot.service.host_notes)) == stamped_out(_ics(slot, link, slot.service.host_notes))


def test_the_tools_http_session_keeps_connections_and_no_cookie_and_is_the_processs_own():
    """Calls to a tool reuse one kept-alive connection (a batch checks many meetings), never carry a
    cookie a platform set on an earlier call (another host's), and a forked work horse opens its
    own session rather than its parent's sockets."""
    import multiprocessing
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.meetings import provider

    connections = []

    class Platform(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def do_GET(self):
            body = (self.headers.get("Cookie") or "").encode()
            self.send_response(200)
            self.send_header("Set-Cookie", "sid=host-a; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v2/meetings/1"
        answers = [provider.http().get(url, timeout=5) for _ in range(3)]
        assert [answer.text for answer in answers] == ["", "", ""]  # the cookie was never sent back
        assert len(connections) == 1
        assert provider.http() is provider.http()

        provider.http()
        with multiprocessing.get_context("fork").Pool(1) as pool:
            own, answer = pool.apply(_in_a_forked_process, (url,))
        assert own and answer == ""
    finally:
        server.shutdown()
        server.server_close()


def _in_a_forked_process(url: str):
    import os

    from app.meetings import provider

    inherited = provider._http_sessions.get(os.getppid())
    session = provider.http()
    return inherited is not None and session is not inherited, session.get(url, timeout=5).text
