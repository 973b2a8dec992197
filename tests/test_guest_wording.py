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
    """Book as a guest does; return the booked page."""
    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                        "guest_email": email})
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
    assert mail_to(smtp, "a@example.com", "【ZoomのURLのお知らせ】")
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
