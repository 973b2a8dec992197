"""A service's lesson-day schedule: the URL email's lead (24/48/72 h) and its reminders, planned
through the outbox, re-planned when the lesson or the guest moves or the host edits the schedule,
cancelled with the booking, and never sent after the start."""
import re
from datetime import timedelta

import pytest

from app import clock
from app.booking import booking as bookings
from app.booking import reschedule as moves
from app.extensions import db
from app.mail import outbox
from app.models import Delivery, DeliveryStatus
from app.services.slots import move_slot
from tests.conftest import body_text


def planned(booking, kind="lesson_reminder", status=DeliveryStatus.PENDING):
    """{minutes before the start: due time} of the booking's emails of ``kind`` in ``status``."""
    db.session.expire_all()
    rows = db.session.query(Delivery).filter_by(booking_id=booking.id, kind=kind, status=status).all()
    starts = clock.as_utc(db.session.get(type(booking), booking.id).slot.starts_at)
    return sorted(round((starts - clock.as_utc(r.due_at)) / timedelta(minutes=1)) for r in rows)


def url_lead_minutes(booking):
    return planned(booking, kind="meeting_url")


@pytest.fixture
def lesson(make_host, link_zoom, make_service, make_slot, make_booking, run_jobs):
    host = make_host(name="山田 花子")
    link_zoom(host, "basic@zoom.test")
    service = make_service(host, title="夜の英会話", duration_minutes=30, url_lead_hours=48,
                           reminder_minutes=[60, 10])
    slot = make_slot(service, starts_in=timedelta(days=4))
    booking = make_booking(slot, email="hana@example.com")
    run_jobs()
    return host, service, slot, booking


def test_a_booking_gets_the_url_email_at_the_services_lead_and_each_reminder(lesson):
    *_, booking = lesson
    assert url_lead_minutes(booking) == [48 * 60]
    assert planned(booking) == [10, 60]


def test_a_late_booking_gets_only_the_reminders_still_ahead(lesson, make_slot, make_booking):
    _, service, _, _ = lesson
    soon = make_slot(service, starts_in=timedelta(minutes=30))
    late = make_booking(soon)
    assert planned(late) == [10]
    assert url_lead_minutes(late) == [30]  # the URL email: at once


def test_an_in_person_service_has_no_reminders(make_host, make_service, make_slot, make_booking):
    service = make_service(make_host(), venue="in_person", kind="class_event", venue_address="東京都渋谷区1-1",
                           reminder_minutes=[60, 10])
    assert planned(make_booking(make_slot(service))) == []


def test_moving_the_lesson_moves_every_email_and_keeps_one_of_each(lesson, run_jobs):
    host, _, slot, booking = lesson
    new_start = slot.starts_at + timedelta(days=1, hours=2)
    move_slot(slot, new_start)
    db.session.commit()
    assert url_lead_minutes(booking) == [48 * 60] and planned(booking) == [10, 60]
    reminders = db.session.query(Delivery).filter_by(booking_id=booking.id, kind="lesson_reminder").all()
    assert {clock.as_utc(r.due_at) for r in reminders if r.status == DeliveryStatus.PENDING} == {
        clock.as_utc(new_start) - timedelta(minutes=60), clock.as_utc(new_start) - timedelta(minutes=10)}
    assert sum(r.status == DeliveryStatus.CANCELLED for r in reminders) == 2  # the old time's


def test_a_guest_moving_to_another_date_takes_the_reminders_along(lesson, make_slot):
    _, service, _, booking = lesson
    other = make_slot(service, starts_in=timedelta(days=6))
    moves.move_booking(booking, other.id)
    db.session.expire_all()
    rows = db.session.query(Delivery).filter_by(booking_id=booking.id, kind="lesson_reminder",
                                                status=DeliveryStatus.PENDING).all()
    assert sorted(clock.as_utc(r.due_at) for r in rows) == [
        clock.as_utc(other.starts_at) - timedelta(minutes=60), clock.as_utc(other.starts_at) - timedelta(minutes=10)]


def test_cancelling_cancels_the_reminders(lesson):
    *_, booking = lesson
    bookings.cancel_booking(booking)
    db.session.commit()
    assert planned(booking) == [] and url_lead_minutes(booking) == []


def test_the_host_changing_the_schedule_replans_bookings_already_made(lesson, client, run_jobs):
    host, service, slot, booking = lesson  # link_zoom signed the host in
    form = client.get(f"/services/{service.id}/edit").get_data(as_text=True)
    ticked = {re.search(r'value="(\d+)"', tag).group(1) for tag in re.findall(r'<input[^>]*>', form)
              if 'name="reminder_minutes"' in tag and "checked" in tag}
    assert ticked == {"60", "10"}
    assert re.search(r'<option selected value="48">|<option value="48" selected>', form)
    response = client.post(f"/services/{service.id}/edit", {
        "kind": "online", "title": "夜の英会話", "description": "", "duration_minutes": "30", "capacity": "3",
        "venue": "zoom", "venue_address": "", "meeting_url": "", "host_notes": "", "cancellation_policy": "",
        "join_opens_minutes": "10", "reschedule_cutoff_hours": "24",
        "url_lead_hours": "72", "reminder_minutes": ["180"]}, follow_redirects=True)
    assert "ご予約済みの開催日時のメールも、新しい設定で送ります" in response.get_data(as_text=True)
    run_jobs()
    assert url_lead_minutes(booking) == [72 * 60]
    assert planned(booking) == [180]


def test_the_reminder_is_rendered_at_send_time_with_the_lesson_page_link(lesson, smtp):
    *_, slot, booking = lesson
    clock.travel_to(slot.starts_at - timedelta(minutes=10))
    outbox.send_due()
    messages = [m for m in smtp.to("hana@example.com") if "まもなく開始" in m["Subject"]]
    assert len(messages) == 2  # the 60- and the 10-minute reminders: both fell due
    text = body_text(messages[-1])
    assert f"/j/{booking.join_token}" in text and "「参加する」ボタンは、開始の10分前から押せます" in text
    assert "10分後に始まります" in text
    # Zoom Basic, 30-minute lesson: no 40-minute cut to mention.
    assert "40分で一度終了" not in text


def test_a_reminder_is_never_sent_after_the_start(lesson, smtp):
    *_, slot, booking = lesson
    clock.travel_to(slot.starts_at + timedelta(minutes=1))
    outbox.send_due()
    assert not [m for m in smtp.to("hana@example.com") if "まもなく開始" in m["Subject"]]
    assert planned(booking) == []


def test_a_reminder_for_a_time_the_lesson_no_longer_has_is_dropped(lesson, smtp):
    """Even when no re-plan ran (a change written by hand): the reminder checks the lesson at send time."""
    *_, slot, booking = lesson
    slot.starts_at = slot.starts_at + timedelta(hours=5)
    db.session.commit()
    clock.travel_to(slot.starts_at - timedelta(hours=5, minutes=10))
    outbox.send_due()
    assert not [m for m in smtp.to("hana@example.com") if "まもなく開始" in m["Subject"]]


def test_the_preflight_runs_three_hours_before_the_services_own_lead(make_host, link_zoom, make_service, make_slot,
                                                                    make_booking, run_jobs):
    from app.meetings import planning

    host = make_host()
    link_zoom(host, "basic@zoom.test")
    early = make_service(host, title="72時間前に案内", url_lead_hours=72)
    usual = make_service(host, title="24時間前に案内")
    slots = [make_slot(early, starts_in=timedelta(days=4)), make_slot(usual, starts_in=timedelta(days=4))]
    for slot in slots:
        make_booking(slot)
    run_jobs()
    clock.travel_to(slots[0].starts_at - timedelta(hours=75, minutes=-1))
    assert planning.run_preflights() == 1  # the 72-hour service only
    clock.travel_to(slots[1].starts_at - timedelta(hours=27, minutes=-1))
    assert planning.run_preflights() == 1  # now the 24-hour one; the other ran already


def test_the_service_page_says_when_the_lesson_day_emails_go(lesson, client):
    _, service, _, _ = lesson
    html = client.get(f"/services/{service.id}").get_data(as_text=True)
    line = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'<p[^>]*id="lesson-emails".*?</p>', html, re.S).group(0)))
    assert "参加URLは開始の48時間前" in line and "リマインドは開始の1時間前、開始の10分前" in line
