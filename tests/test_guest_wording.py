"""What guests and hosts are told about the join URL, and the small things a newcomer sees first.

Issue 15, item 5 and "also seen": the confirmation (email and page) says when the URL comes, the
【日時変更】 email says whether the link changes, the Zoom OFF page offers a prefilled notice to
the guests who hold a URL, a favicon, English samples in English, and a quiet ``seed-demo``.
"""
import logging
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.extensions import db
from app.mail import outbox
from tests.conftest import body_html, body_text

AHEAD = "参加URLは開催24時間前にメールでお送りします"
SOON = "参加URLはまもなくメールでお送りします"
UNCHANGED = "参加URLは変わりません。お送り済みのURLからご参加ください。"
AFTER_MOVE = "参加URLは新しい日時の24時間前にメールでお送りします"
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff60\u3000-\u303f]")


@pytest.fixture
def linked_host(make_host, link_zoom):
    """A host whose Zoom is linked (the emulator's Basic user); the client is logged in as them."""
    def make(name="山田 花子"):
        host = make_host(name=name)
        link_zoom(host)
        return host
    return make


def book_on_the_page(client, service, slot, email):
    """Book as a guest does (the confirm step's 「この内容で申し込む」); return the booked page."""
    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                        "guest_email": email, "confirm": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def mail_to(smtp, address, subject_start):
    return next(m for m in smtp.messages if address in str(m["To"]) and m["Subject"].startswith(subject_start))


# --- 1. the confirmation says when the URL comes --------------------------------------------------

def test_auto_issue_booking_is_told_the_url_comes_24_hours_ahead(client, linked_host, make_service, make_slot,
                                                                 run_jobs, smtp):
    service = make_service(linked_host(), title="オンライン書道")
    slot = make_slot(service, starts_in=timedelta(days=3))
    page = book_on_the_page(client, service, slot, "ichiro@example.com")
    assert AHEAD in page and SOON not in page
    run_jobs()
    confirmation = mail_to(smtp, "ichiro@example.com", "【お申し込み完了】")
    assert AHEAD in body_text(confirmation) and AHEAD in body_html(confirmation)
    assert SOON not in body_text(confirmation)


def test_late_booking_is_told_the_url_comes_soon(client, linked_host, make_service, make_slot, run_jobs, smtp):
    service = make_service(linked_host(), title="直前レッスン")
    slot = make_slot(service, starts_in=timedelta(hours=5))
    page = book_on_the_page(client, service, slot, "late@example.com")
    assert SOON in page and "24時間前" not in page
    run_jobs()
    confirmation = mail_to(smtp, "late@example.com", "【お申し込み完了】")
    assert SOON in body_text(confirmation) and SOON in body_html(confirmation)
    assert "24時間前" not in body_text(confirmation)


@pytest.mark.parametrize("linked, venue", [(False, "zoom"), (True, "manual_url")], ids=["no-link", "not-zoom"])
def test_services_without_auto_issue_promise_no_url(client, make_host, link_zoom, make_service, make_slot,
                                                    run_jobs, smtp, linked, venue):
    host = make_host()
    if linked:
        link_zoom(host)
    service = make_service(host, venue=venue)
    slot = make_slot(service, starts_in=timedelta(days=3))
    page = book_on_the_page(client, service, slot, "plain@example.com")
    assert "参加URL" not in page
    run_jobs()
    confirmation = mail_to(smtp, "plain@example.com", "【お申し込み完了】")
    assert "参加URL" not in body_text(confirmation) and "参加URL" not in body_html(confirmation)


# --- 2. the 【日時変更】 email says whether the link changes ------------------------------------------

def move(client, slot, to):
    """The host moves the slot to ``to`` (UTC) on the move page, typed in Japan time."""
    local = to.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/slots/{slot.id}/move", {"starts_at": local})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_moved_after_the_url_was_sent_keeps_the_link(client, linked_host, make_service, make_slot, make_booking,
                                                     run_jobs, smtp):
    service = make_service(linked_host(), title="朝ヨガ")
    slot = make_slot(service, starts_in=timedelta(days=2))
    make_booking(slot, email="a@example.com")
    run_jobs()
    clock.travel_to(slot.starts_at - timedelta(hours=24))
    outbox.send_due()
    assert mail_to(smtp, "a@example.com", "【参加URLのご案内】")
    move(client, slot, slot.starts_at + timedelta(days=3))
    run_jobs()
    moved = mail_to(smtp, "a@example.com", "【日時変更】")
    assert UNCHANGED in body_text(moved) and UNCHANGED in body_html(moved)
    assert "時間前にメールでお送りします" not in body_text(moved)


def test_moved_before_the_url_was_sent_says_when_it_comes(client, linked_host, make_service, make_slot,
                                                          make_booking, run_jobs, smtp):
    service = make_service(linked_host(), title="朝ヨガ")
    slot = make_slot(service, starts_in=timedelta(days=2))
    make_booking(slot, email="b@example.com")
    run_jobs()
    move(client, slot, slot.starts_at + timedelta(days=3))
    run_jobs()
    moved = mail_to(smtp, "b@example.com", "【日時変更】")
    assert AFTER_MOVE in body_text(moved) and AFTER_MOVE in body_html(moved)
    assert UNCHANGED not in body_text(moved)


def test_moved_without_auto_issue_says_nothing_of_urls(client, login, make_host, make_service, make_slot,
                                                      make_booking, run_jobs, smtp):
    service = make_service(make_host(), title="朝ヨガ")
    slot = make_slot(service, starts_in=timedelta(days=2))
    make_booking(slot, email="c@example.com")
    run_jobs()
    login(service.host)
    move(client, slot, slot.starts_at + timedelta(days=3))
    run_jobs()
    moved = mail_to(smtp, "c@example.com", "【日時変更】")
    assert "参加URL" not in body_text(moved) and "参加URL" not in body_html(moved)


# --- 3. after OFF, a prefilled notice to the guests who hold a URL ---------------------------------

def links_on(page: str, containing: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', page) if containing in unescape(href)]


def checked_slots(page: str) -> set[int]:
    return {int(i) for i in re.findall(r'name="slot_ids" value="(\d+)"\s*checked', page)}


def test_off_offers_a_prefilled_url_notice_to_exactly_the_guests_holding_a_url(
        client, linked_host, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    other_slot = make_slot(make_service(make_host(), title="他のホストの講座"), starts_in=timedelta(hours=6))
    make_booking(other_slot, email="stranger@example.com")
    host = linked_host()
    yoga, tea = make_service(host, title="朝ヨガ"), make_service(host, title="お茶会")
    yoga_soon = make_slot(yoga, starts_in=timedelta(hours=5))     # booked late: the URL goes out at once
    yoga_later = make_slot(yoga, starts_in=timedelta(days=3))     # the URL is not due yet
    tea_soon = make_slot(tea, starts_in=timedelta(hours=8))
    make_booking(yoga_soon, email="holder@example.com")
    make_booking(yoga_later, email="waiting@example.com")
    make_booking(tea_soon, email="tea@example.com")
    run_jobs()
    assert {str(m["To"]) for m in smtp.messages if m["Subject"].startswith("【参加URLのご案内】")} == {
        "予約 太郎 <holder@example.com>", "予約 太郎 <tea@example.com>"}

    done = client.post("/settings/zoom/off").get_data(as_text=True)
    notices = links_on(done, "template=url_changed")
    chosen = {parse_qs(urlsplit(href).query)["service_id"][0]: parse_qs(urlsplit(href).query)["slot_ids"]
              for href in notices}
    assert chosen == {str(yoga.id): [str(yoga_soon.id)], str(tea.id): [str(tea_soon.id)]}
    assert "参加URL変更のお知らせを送る" in done

    yoga_notice = next(href for href in notices if f"service_id={yoga.id}" in href)
    page = client.get(f"{yoga_notice}&slot_ids={other_slot.id}&slot_ids={yoga_later.id + 1000}").get_data(as_text=True)
    assert re.search(r'name="subject"[^>]*value="参加URL変更のお知らせ"', page)
    body = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert "使えなくなりました" in unescape(body) and "{guest_name}" in unescape(body)
    assert checked_slots(page) == {yoga_soon.id}
    assert "送信先 1名" in page and "holder@example.com" in page
    assert "stranger@example.com" not in page and "waiting@example.com" not in page

    # Sent as prefilled, it reaches exactly the guest who held the URL.
    smtp.clear()
    client.post(f"/messages/new?service_id={yoga.id}", {
        "service_id": yoga.id, "slot_ids": [yoga_soon.id], "subject": "参加URL変更のお知らせ",
        "body": unescape(body), "send_mode": "now", "action": "send"}, form_url=yoga_notice)
    run_jobs()
    [notice] = [m for m in smtp.messages if m["Subject"] == "参加URL変更のお知らせ"]
    assert str(notice["To"]) == "予約 太郎 <holder@example.com>"
    assert "予約 太郎 様" in body_text(notice) and "使えなくなりました" in body_text(notice)


def test_composer_ignores_slot_ids_of_other_hosts(client, login, make_host, make_service, make_slot, make_booking):
    mine = make_service(make_host(), title="朝ヨガ")
    my_slot = make_slot(mine)
    make_booking(my_slot, email="mine@example.com")
    theirs = make_slot(make_service(make_host(), title="他のホストの講座"))
    make_booking(theirs, email="theirs@example.com")
    login(mine.host)
    page = client.get(f"/messages/new?service_id={mine.id}&slot_ids={theirs.id}&slot_ids={my_slot.id}"
                      "&template=url_changed").get_data(as_text=True)
    assert checked_slots(page) == {my_slot.id}
    assert "theirs@example.com" not in page and "送信先 1名" in page
    unknown = client.get(f"/messages/new?service_id={mine.id}&template=nope").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="subject"[^>]*value=""', unknown)  # an unknown template prefills nothing


# --- also seen: a favicon --------------------------------------------------------------------------

def test_favicon_is_served_and_linked_from_host_and_guest_pages(client, make_host, make_service):
    response = client.get("/favicon.ico")
    data = response.data
    response.close()  # a file response: its file stays open until closed
    assert response.status_code == 200 and response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    guest_page = client.get(f"/s/{make_service(make_host()).public_id}").get_data(as_text=True)
    for page in (client.get("/login").get_data(as_text=True), guest_page):
        icons = re.findall(r'<link rel="icon" href="([^"]+)"', page)
        assert icons
        for href in icons:
            icon = client.get(href)
            icon.close()
            assert icon.status_code == 200 and icon.mimetype.startswith("image/"), href


# --- also seen: English samples in English -----------------------------------------------------------

def test_english_preview_of_the_held_message_email_has_no_japanese(client, login, make_host):
    login(make_host(email="ops@example.com", name="運営", is_staff=True))
    page = client.get("/staff/templates?kind=bulk_message_held").get_data(as_text=True)
    english = re.findall(r'<section class="card template-sample"[^>]*data-lang="en">(.*?)</section>', page, re.S)
    assert english
    for section in english:
        subject = re.search(r"</strong>(.*?)</p>", section, re.S).group(1)
        text = re.search(r"<pre[^>]*>(.*?)</pre>", section, re.S).group(1)
        html = re.search(r'srcdoc="([^"]*)"', section).group(1)
        for part in (subject, text, html):
            assert not JAPANESE.search(unescape(part)), JAPANESE.findall(unescape(part))
    japanese = re.search(r'data-lang="ja">(.*?)</section>', page, re.S).group(1)
    assert "山田 花子" in japanese and "中止" in japanese  # the Japanese sample stays Japanese


def test_an_english_host_is_told_in_english_why_a_message_is_held(make_host, make_service, make_slot, make_booking,
                                                                  run_jobs, smtp):
    from app.messages import bulk
    from app.models import Message
    from app.services.slots import cancel_slot

    host = make_host(name="Alex Smith")
    host.locale = "en"
    service = make_service(host, title="Piano class", venue="manual_url", kind="class_event")
    slot = make_slot(service, starts_in=timedelta(days=2))
    make_booking(slot, name="Ichiro Sato", email="ichiro@example.com")
    bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="What to bring", body="A pen.",
                 scheduled_at=clock.now() + timedelta(hours=1))
    cancel_slot(slot)
    db.session.commit()
    clock.advance(timedelta(hours=2))
    bulk.start_due_messages()
    run_jobs()
    [held] = [m for m in smtp.messages if host.email in str(m["To"])]
    assert not JAPANESE.search(str(held["Subject"]) + body_text(held) + body_html(held)), body_text(held)
    assert "cancel" in db.session.query(Message).one().held_reason.lower()


# --- also seen: a quiet first minute ---------------------------------------------------------------

def test_seed_demo_with_redis_not_up_yet_enqueues_nothing_and_leaves_emails_to_the_sweep(app, caplog):
    from app.models import Delivery, DeliveryStatus

    from app import create_app
    from config import TestConfig

    # As `make run` does: seeding comes before Redis is started (nothing listens on port 1), for
    # the outbox's queue and the rate limits' storage alike.
    seeding = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                         REDIS_URL="redis://127.0.0.1:1/0")
    queue_log = logging.getLogger("app.queue")
    # The migrations' logging.config.fileConfig disabled the loggers that existed then: hear this one.
    queue_log.disabled, was_disabled = False, queue_log.disabled
    try:
        with caplog.at_level(logging.INFO):
            result = seeding.test_cli_runner().invoke(args=["seed-demo"])
    finally:
        queue_log.disabled = was_disabled
        with seeding.app_context():
            db.session.remove()
            db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert "demo host : host@example.com" in result.output
    assert "could not enqueue" not in caplog.text + result.output
    assert "Redis unavailable" not in caplog.text + result.output  # the demo data counts against no limit
    due = db.session.query(Delivery).filter(Delivery.status == DeliveryStatus.PENDING,
                                            Delivery.due_at <= clock.now()).count()
    assert due > 0  # the scheduler's sweep sends them once it runs
