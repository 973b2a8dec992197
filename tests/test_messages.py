"""Host notes preview and bulk messages: placeholders, audience, isolation, scheduling, progress."""
from datetime import timedelta

import pytest

from app import clock
from app.extensions import db
from app.mail import outbox
from app.messages import bulk
from app.models import Delivery, Message, MessageStatus
from tests.conftest import body_text, selects_sending_due_mail, send_with_smtp_down_until_given_up


@pytest.fixture
def booked_service(make_host, make_service, make_slot, make_booking):
    """A host with one service, two slots and three guests."""
    host = make_host(name="田中 先生")
    service = make_service(host, title="ピアノ教室", venue="manual_url", kind="class_event")
    first, second = make_slot(service, timedelta(days=2)), make_slot(service, timedelta(days=3))
    guests = [make_booking(first, "一郎", "ichiro@example.com"), make_booking(first, "二郎", "jiro@example.com"),
              make_booking(second, "三郎", "saburo@example.com")]
    return host, service, first, second, guests


def compose_form(slot_ids, subject="{guest_name}様へのお知らせ", body="{service_title}は{slot_datetime}からです。",
                 **extra):
    return {"slot_ids": [str(i) for i in slot_ids], "subject": subject, "body": body, "send_mode": "now", **extra}


def test_send_now_reaches_each_guest_separately_with_their_own_values(client, login, booked_service, run_jobs, smtp):
    host, service, first, second, guests = booked_service
    login(host)
    url = f"/messages/new?service_id={service.id}"
    response = client.post(url, {**compose_form([first.id]), "action": "send"})
    assert response.status_code == 302
    run_jobs()
    messages = [m for m in smtp.wait_for(5) if "様へのお知らせ" in m["Subject"]]
    assert sorted(m["Subject"] for m in messages) == ["一郎様へのお知らせ", "二郎様へのお知らせ"]
    for m in messages:
        assert len(m["To"].addresses) == 1 and m["Cc"] is None and m["Bcc"] is None
        other = "jiro@example.com" if "ichiro" in str(m["To"]) else "ichiro@example.com"
        assert other not in m.as_string()
    assert clock.format_datetime_local(first.starts_at) in body_text(messages[0])
    message = db.session.query(Message).one()
    assert bulk.progress(message).percent == 100
    assert client.get(f"/messages/{message.id}/progress.json").json["sent"] == 2


def test_ssti_arrives_literally(client, login, booked_service, run_jobs, smtp):
    host, service, first, *_ = booked_service
    login(host)
    client.post(f"/messages/new?service_id={service.id}", {
        **compose_form([first.id], subject="お知らせ", body="{{ config }} {% for x in range(3) %}x{% endfor %} {{7*7}}"),
        "action": "send"})
    run_jobs()
    mail = next(m for m in smtp.wait_for(4) if m["Subject"] == "お知らせ")
    text = body_text(mail)
    assert "{{ config }} {% for x in range(3) %}x{% endfor %} {{7*7}}" in text
    assert "SECRET_KEY" not in text and "\n49" not in text and " 49 " not in text


def test_header_injection_and_unknown_placeholders_are_refused_keeping_the_draft(client, login, booked_service):
    host, service, first, *_ = booked_service
    login(host)
    url = f"/messages/new?service_id={service.id}"
    page = client.post(url, {**compose_form([first.id], subject="件名\r\nBcc: all@example.com",
                                            body="下書き本文"), "action": "send"}).get_data(as_text=True)
    assert "件名に改行は使えません" in page and "下書き本文" in page
    page = client.post(url, {**compose_form([first.id], subject="件名", body="{guest_nam} さん"),
                             "action": "send"}).get_data(as_text=True)
    assert "使えない差し込み項目があります: {guest_nam}" in page and "{guest_nam} さん" in page
    page = client.post(url, {**compose_form([], subject="件名", body="本文"), "action": "send"}).get_data(as_text=True)
    assert "送信先の開催日時を1つ以上選んでください" in page
    assert db.session.query(Message).count() == 0


def test_preview_shows_recipients_and_first_rendering(client, login, booked_service):
    host, service, first, *_ = booked_service
    login(host)
    page = client.post(f"/messages/new?service_id={service.id}",
                       {**compose_form([first.id]), "action": "preview"}).get_data(as_text=True)
    assert "送信先 2名" in page and "ichiro@example.com" in page and "一郎様へのお知らせ" in page
    assert db.session.query(Message).count() == 0


def test_hosts_can_only_target_their_own_guests(client, login, booked_service, make_host, make_service):
    host, service, first, *_ = booked_service
    intruder = make_host()
    own = make_service(intruder)
    login(intruder)
    assert client.get(f"/messages/new?service_id={service.id}").status_code == 404
    # Slot ids of someone else's service are ignored: the audience is empty.
    page = client.post(f"/messages/new?service_id={own.id}", {**compose_form([first.id]), "action": "send"})
    assert "送信先の予約者がいません" in page.get_data(as_text=True)
    assert db.session.query(Delivery).filter(Delivery.bulk_message_id.is_not(None)).count() == 0


def test_scheduled_message_is_sent_when_due_and_can_be_edited_before(client, login, booked_service, run_jobs, smtp):
    host, service, first, second, guests = booked_service
    login(host)
    when = clock.to_local(clock.now() + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
    client.post(f"/messages/new?service_id={service.id}", {
        **compose_form([first.id, second.id], send_mode="schedule", scheduled_at=when), "action": "send"})
    message = db.session.query(Message).one()
    assert message.status == MessageStatus.SCHEDULED
    assert bulk.start_due_messages() == 0
    client.post(f"/messages/{message.id}/edit", {**compose_form([second.id], subject="変更後", send_mode="schedule",
                                                                scheduled_at=when), "action": "send"})
    clock.advance(timedelta(hours=5, minutes=1))
    assert bulk.start_due_messages() == 1
    run_jobs()
    sent = [m for m in smtp.wait_for(4) if m["Subject"] == "変更後"]
    assert [m["To"].addresses[0].addr_spec for m in sent] == ["saburo@example.com"]


def test_scheduled_message_is_held_when_its_slot_is_cancelled(client, login, booked_service, run_jobs, smtp):
    host, service, first, second, guests = booked_service
    login(host)
    when = clock.to_local(clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client.post(f"/messages/new?service_id={service.id}", {
        **compose_form([first.id, second.id], send_mode="schedule", scheduled_at=when), "action": "send"})
    client.post(f"/slots/{first.id}/cancel", form_url=f"/services/{service.id}")
    clock.advance(timedelta(hours=2))
    bulk.start_due_messages()
    message = db.session.query(Message).one()
    db.session.refresh(message)
    assert message.status == MessageStatus.HELD and "中止" in message.held_reason
    run_jobs()
    assert any(m["Subject"] == "【要確認】メッセージの送信を保留しました" for m in smtp.messages)
    client.post(f"/messages/{message.id}/release", form_url=f"/messages/{message.id}")
    run_jobs()
    got = [m["To"].addresses[0].addr_spec for m in smtp.messages if "様へのお知らせ" in m["Subject"]]
    assert got == ["saburo@example.com"]


def test_crash_mid_send_then_resend_failed_only(app, client, login, booked_service, run_jobs, smtp):
    host, service, first, second, guests = booked_service
    login(host)
    client.post(f"/messages/new?service_id={service.id}", {**compose_form([first.id, second.id]), "action": "send"})
    message = db.session.query(Message).one()
    rows = bulk.recipients(message)
    outbox.send_deliveries([rows[0].id])  # one guest served, then the SMTP server "goes away"
    send_with_smtp_down_until_given_up(app)
    assert bulk.progress(message).failed == 2
    page = client.get(f"/messages/{message.id}").get_data(as_text=True)
    assert "失敗した2件だけ再送する" in page
    client.post(f"/messages/{message.id}/resend-failed", form_url=f"/messages/{message.id}")
    run_jobs()
    got = sorted(m["To"].addresses[0].addr_spec for m in smtp.messages if "様へのお知らせ" in m["Subject"])
    assert got == ["ichiro@example.com", "jiro@example.com", "saburo@example.com"]  # nobody twice


def test_daily_limit(app, client, login, booked_service):
    host, service, first, *_ = booked_service
    login(host)
    app.config["BULK_DAILY_LIMIT"] = 1
    try:
        page = client.post(f"/messages/new?service_id={service.id}", {**compose_form([first.id]), "action": "send"})
    finally:
        app.config["BULK_DAILY_LIMIT"] = 1000
    assert "1日に送れるメッセージは1通まで" in page.get_data(as_text=True)


def test_notes_preview_is_the_real_confirmation_and_plain_text(client, login, make_host, make_service):
    host = make_host()
    service = make_service(host, venue="manual_url", kind="private", title="個別相談")
    login(host)
    page = client.get(f"/services/{service.id}/notes").get_data(as_text=True)
    assert "【お申し込み完了】個別相談" in page
    assert "Zoom連携がONでなく" in page  # online, no Zoom, no URL in notes
    preview = client.post(f"/services/{service.id}/notes/preview",
                          {"host_notes": "<b>太字</b> {{ config }} https://meet.example.com/abc"},
                          form_url=f"/services/{service.id}/notes").json
    assert "&lt;b&gt;太字&lt;/b&gt;" in preview["html"] and "{{ config }}" in preview["text"]
    assert '<a href="https://meet.example.com/abc"' in preview["html"] and preview["hint"] is False
    long = client.post(f"/services/{service.id}/notes/preview", {"host_notes": "x" * 2001},
                       form_url=f"/services/{service.id}/notes")
    assert long.status_code == 400
    client.post(f"/services/{service.id}/notes", {"host_notes": "新しいURL https://meet.example.com/new"})
    db.session.rollback()
    assert db.session.get(type(service), service.id).host_notes.endswith("/new")


def test_a_batch_of_bulk_emails_reads_the_same_statements_for_four_times_the_guests(app, make_host, make_service,
                                                                                    make_slot, make_booking, smtp):
    """No query per recipient: the batch's bookings are read in one query, and the slot, its
    service, host and meeting once (a behaviour test: an N+1 shows as a count that grows)."""

    def selects_to_send_a_message_to(guests: int) -> int:
        host = make_host()
        service = make_service(host, title="ピアノ教室", venue="manual_url", kind="class_event", capacity=20)
        slot = make_slot(service, timedelta(days=2))
        for i in range(guests):
            make_booking(slot, f"ゲスト{i}", f"guest{i}.{slot.id}@example.com")
        outbox.send_due()  # the confirmations: out of the way
        bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="{guest_name}様",
                     body="{slot_datetime}", scheduled_at=None)
        return selects_sending_due_mail(app, guests)

    assert selects_to_send_a_message_to(3) == selects_to_send_a_message_to(12)
