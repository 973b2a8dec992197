"""Staff console (gallery, deliveries, access) and the legacy sub-account migration."""
import smtplib
from datetime import timedelta

import pytest
from markupsafe import escape

from app import clock
from app.cli import DEMO_PASSWORD, LEGACY_HOSTS
from app.extensions import db
from app.mail import outbox
from app.mail.render import registered_kinds, render_kind
from app.mail.samples import SAMPLES, sample_contexts
from app.models import Delivery, DeliveryStatus, LegacyStatus, LegacyZoomLink, MeetingStatus, User, Meeting
from app.staff.deliveries import readable_error
from tests.conftest import body_text


@pytest.fixture
def staff(make_host):
    return make_host(email="ops@example.com", name="運営", is_staff=True)


def test_staff_pages_are_refused_to_hosts(client, login, make_host):
    login(make_host())
    for url in ("/staff/templates", "/staff/deliveries", "/staff/mailbox", "/staff/migration"):
        assert client.get(url).status_code == 403
    client.post("/logout", form_url="/dashboard")
    assert client.get("/staff/deliveries").status_code == 302  # to the login page


def test_every_template_renders_in_both_languages(app, client, login, staff):
    assert set(SAMPLES) == set(registered_kinds()), "every email kind needs gallery samples"
    with app.test_request_context():
        for kind in registered_kinds():
            for variant, context in sample_contexts(kind).items():
                for lang in ("ja", "en"):
                    mail = render_kind(kind, context, lang)
                    assert mail.subject and mail.text.strip() and "<html" in mail.html, (kind, variant, lang)
    login(staff)
    for kind in registered_kinds():
        page = client.get(f"/staff/templates?kind={kind}").get_data(as_text=True)
        assert page.count('class="frame-phone"') == 2 * len(SAMPLES[kind])


def test_gallery_shows_the_40_minute_line_only_for_basic(app, client, login, staff):
    login(staff)
    page = client.get("/staff/templates?kind=meeting_url").get_data(as_text=True)
    assert "Zoom無料（Basic）ホスト・40分を超えるサービス" in page and "Zoom有料（Licensed）ホスト" in page
    assert "40分で一度終了します" in page and "ホストがミーティングを再開します" in page
    # Google Meet: the 60-minute group limit and 「参加をリクエスト」, never Zoom's restart.
    assert "3人以上が参加している場合、開始から60分で終了します" in page and "参加をリクエスト" in page
    assert "Google Meetで参加する" in page
    waiting = client.get("/staff/templates?kind=meeting_url_waiting").get_data(as_text=True)
    assert "ただいま準備しています" in waiting  # the email a guest gets while the URL cannot be issued


def test_deliveries_search_filter_and_resend_failed(app, client, login, staff, make_host, smtp):
    host = make_host(email="target@example.com")
    failed = outbox.queue_email("password_reset", to_email=host.email, host_id=host.id, payload={"user_id": host.id})
    failed.status, failed.last_error, failed.attempts = DeliveryStatus.FAILED, "SMTP down", 5
    outbox.queue_email("password_reset", to_email="other@example.com", payload={"user_id": host.id},
                       due_at=clock.now() + timedelta(days=1))
    db.session.commit()
    login(staff)
    page = client.get("/staff/deliveries?q=target&status=FAILED").get_data(as_text=True)
    assert "target@example.com" in page and "SMTP down" in page and "other@example.com" not in page
    assert "other@example.com" not in client.get(f"/staff/deliveries?host_id={host.id}").get_data(as_text=True)
    client.post(f"/staff/deliveries/{failed.id}/resend", form_url="/staff/deliveries")
    outbox.send_due()
    assert smtp.wait_for(1)[0]["To"].addresses[0].addr_spec == "target@example.com"


@pytest.mark.parametrize("error, readable", [
    (smtplib.SMTPRecipientsRefused({"nobody@example.com": (550, b"5.1.1 User unknown")}), "550 5.1.1 User unknown"),
    (smtplib.SMTPDataError(554, b"5.7.1 Message rejected\nas spam"), "554 5.7.1 Message rejected as spam"),
    (smtplib.SMTPSenderRefused(553, b"5.1.8 Sender's domain unknown", "no-reply@booking.test"),
     "553 5.1.8 Sender's domain unknown"),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
     "SMTPServerDisconnected: Connection unexpectedly closed"),  # no reply: shown as stored
])
def test_readable_error_is_the_smtp_reply(error, readable):
    stored = f"{type(error).__name__}: {error}"  # as the outbox stores it
    assert readable_error(stored) == readable


def test_deliveries_show_the_smtp_reply_and_keep_the_raw_error(app, client, login, staff, make_host, smtp):
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port
    from tests.test_outbox import RejectingInbox

    host = make_host()
    outbox.queue_email("password_reset", to_email="nobody@example.com", payload={"user_id": host.id})
    db.session.commit()
    controller = Controller(RejectingInbox(smtp), hostname="127.0.0.1", port=free_port())
    controller.start()
    real_port, app.config["SMTP_PORT"] = app.config["SMTP_PORT"], controller.port
    try:
        outbox.send_due()
    finally:
        app.config["SMTP_PORT"] = real_port
        controller.stop()
    login(staff)
    page = client.get("/staff/deliveries?status=FAILED").get_data(as_text=True)
    [row] = [tr for tr in page.split("<tr>") if "nobody@example.com" in tr]
    raw = "SMTPRecipientsRefused: {'nobody@example.com': (550, b'5.1.1 No such user')}"
    assert "<summary>550 5.1.1 No such user</summary>" in row
    assert f"<code>{escape(raw)}</code>" in row  # the raw error stays one click away


@pytest.fixture
def demo(app):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.rollback()


def test_announce_and_release_on_demo_data(app, client, login, demo, smtp, run_jobs, staff):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["migration", "announce", "--deadline", "2030-01-31"])
    assert "2 host(s) notified" in first.output
    again = runner.invoke(args=["migration", "announce", "--deadline", "2030-01-31"])
    assert "0 host(s) notified" in again.output
    run_jobs()
    notices = [m for m in smtp.messages if "Zoom連携がご自身の" in m["Subject"]]
    assert sorted(m["To"].addresses[0].addr_spec for m in notices) == sorted(LEGACY_HOSTS)
    text = body_text(notices[0])
    assert "2030年1月31日(木)" in text and "40分" in text and "OFFにしてください" in text

    legacy_host = db.session.query(User).filter_by(email=LEGACY_HOSTS[0]).one()
    login(legacy_host, DEMO_PASSWORD)
    assert "Zoom連携の切り替えまであと" in client.get("/dashboard").get_data(as_text=True)
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "旧Zoom連携をOFFにする" in page and "よくある質問" in page
    # Before the release a legacy URL still works through the stable link.
    meeting = db.session.query(Meeting).filter_by(host_id=legacy_host.id).first()
    booking = meeting.slot.bookings[0]
    assert client.get(f"/j/{booking.join_token}/go").headers["Location"] == meeting.join_url
    client.post("/logout", form_url="/dashboard")

    login(staff)
    page = client.get("/staff/migration").get_data(as_text=True)
    assert 'id="m-affected">2<' in page and 'id="m-legacy">2<' in page and 'id="m-risk">4<' in page
    client.post("/logout", form_url="/staff/migration")

    released = runner.invoke(args=["migration", "release"])
    assert "2 legacy link(s) released" in released.output
    assert "0 legacy link(s) released" in runner.invoke(args=["migration", "release"]).output
    db.session.rollback()
    assert {link.status for link in db.session.query(LegacyZoomLink)} == {LegacyStatus.RELEASED}
    assert {m.status for m in db.session.query(Meeting).filter_by(legacy=True)} == {MeetingStatus.DELETED}
    assert db.session.query(Delivery).filter_by(kind="meeting_url", status=DeliveryStatus.PENDING).count() == 0
    run_jobs()
    released_mails = [m for m in smtp.messages if "旧Zoom連携を終了しました" in m["Subject"]]
    assert len(released_mails) == 2
    assert "/messages/new?service_id=" in body_text(released_mails[0])
    # Legacy URLs are dead and nothing is sent automatically for them any more.
    login(legacy_host, DEMO_PASSWORD)
    assert "取りやめた" in client.get(f"/j/{booking.join_token}").get_data(as_text=True)
    assert "Zoom連携の切り替えまであと" not in client.get("/dashboard").get_data(as_text=True)
    smtp.clear()
    clock.advance(timedelta(days=6))
    outbox.send_due()
    assert not [m for m in smtp.messages if "URL" in m["Subject"]]


def test_host_turns_the_legacy_link_off_before_release(app, client, login, demo):
    legacy_host = db.session.query(User).filter_by(email=LEGACY_HOSTS[1]).one()
    login(legacy_host, DEMO_PASSWORD)
    page = client.post("/settings/zoom/legacy-off", form_url="/settings/zoom", follow_redirects=True)
    assert "旧Zoom連携をOFFにしました。発行済みのURL2件を無効にし、自動送信予定だったメール2通を取り消しました。" in page.get_data(as_text=True)
    assert db.session.query(LegacyZoomLink).filter_by(host_id=legacy_host.id).one().status == LegacyStatus.OFF
