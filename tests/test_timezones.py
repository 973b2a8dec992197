"""Time zones: a host sets theirs on the account page; host pages follow it; guests read it in words.

The lessons here start at 2030-06-20 16:00 UTC: 09:00 on Thursday in Los Angeles (PDT, UTC−7),
01:00 on Friday in Tokyo. Expected texts are written out, never computed with the code under test.
"""
import re
from datetime import datetime, timedelta, timezone

import pytest
from flask_babel import refresh

from app import clock
from app.extensions import db
from app.models import Delivery, MeetingStatus, Message, User, ZoomConnection, Meeting
from app.models import MeetingFailure
from tests.conftest import body_html, body_text

LESSON = datetime(2030, 6, 20, 16, 0, tzinfo=timezone.utc)
LA_LESSON = "ロサンゼルス時間 2030年6月20日(木) 09:00〜10:00（日本時間 2030年6月21日(金) 01:00〜02:00）"


def words(html: str) -> str:
    """The text of a page or an HTML email (Japan time is a span of its own there)."""
    return re.sub(r"<[^>]+>", "", html)


def in_zone(host: User, zone: str) -> User:
    """Give ``host`` a time zone directly (the account page has its own tests)."""
    host.timezone = zone
    db.session.commit()
    return host


@pytest.fixture
def lesson(make_host, make_service, make_slot):
    """A 60-minute lesson of a host in Los Angeles, five days ahead of the (travelled) clock."""

    def build(zone="America/Los_Angeles", **service_values):
        clock.travel_to(LESSON - timedelta(days=5))
        host = in_zone(make_host(name="Ana Smith"), zone)
        service = make_service(host, title="Morning English", duration_minutes=60,
                               **{"venue": "manual_url", **service_values})
        return host, service, make_slot(service, timedelta(days=5), starts_at=LESSON)

    return build


# --- the account page ---------------------------------------------------------------------------

def test_a_host_sets_their_time_zone_on_the_account_page(client, login, make_host):
    host = make_host()
    login(host)
    page = client.get("/settings/account").get_data(as_text=True)
    assert '<option selected value="Asia/Tokyo">日本時間</option>' in page  # the default, listed first
    assert page.index('value="Asia/Tokyo"') < page.index('value="Africa/Abidjan"')
    assert '<option value="America/Los_Angeles">アメリカ合衆国（ロサンゼルス）時間</option>' in page
    assert 'value="US/Pacific"' not in page and 'value="Etc/GMT+8"' not in page  # no aliases
    assert 'href="/settings/account"' in page  # in the host navigation

    response = client.post("/settings/account", {"timezone": "America/Los_Angeles"})
    assert response.status_code == 302 and response.headers["Location"] == "/settings/account"
    db.session.refresh(host)
    assert host.timezone == "America/Los_Angeles"
    page = client.get("/settings/account").get_data(as_text=True)
    assert "アカウント設定を保存しました。" in page
    assert '<option selected value="America/Los_Angeles">' in page
    assert "（ロサンゼルス時間）" in page  # the current time, in the zone now set


@pytest.mark.parametrize("junk", ["Mars/Olympus_Mons", "US/Pacific", "localtime", "../../etc/passwd", ""])
def test_a_zone_that_is_not_in_the_list_is_refused_and_nothing_changes(client, login, make_host, junk):
    host = make_host()
    login(host)
    page = client.post("/settings/account", {"timezone": junk}).get_data(as_text=True)
    assert ("このタイムゾーンは選べません。一覧から選んでください。" in page
            or "タイムゾーンを選んでください。" in page)
    assert '<option selected value="Asia/Tokyo">' in page  # the saved zone is still chosen
    db.session.refresh(host)
    assert host.timezone == "Asia/Tokyo"


def test_the_account_page_needs_the_csrf_token_and_a_login(client, login, make_host):
    assert client.get("/settings/account").status_code == 302  # to the login page
    host = make_host()
    login(host)
    assert client.post_raw("/settings/account", data={"timezone": "America/Los_Angeles"}).status_code == 400
    db.session.refresh(host)
    assert host.timezone == "Asia/Tokyo"


def test_a_zone_set_before_the_page_existed_is_kept_when_saving(client, login, make_host):
    host = in_zone(make_host(), "US/Pacific")  # an alias: not offered, but not taken away either
    login(host)
    page = client.get("/settings/account").get_data(as_text=True)
    assert '<option selected value="US/Pacific">アメリカ合衆国（ロサンゼルス）時間</option>' in page
    assert client.post("/settings/account", {"timezone": "US/Pacific"}).status_code == 302
    db.session.refresh(host)
    assert host.timezone == "US/Pacific"


# --- host pages follow the zone -----------------------------------------------------------------

def test_host_pages_and_forms_follow_the_zone_set_on_the_account_page(client, login, lesson):
    host, service, slot = lesson(zone="Asia/Tokyo")
    login(host)
    assert "時刻は日本時間で入力してください。" in client.get(f"/services/{service.id}").get_data(as_text=True)
    assert client.post("/settings/account", {"timezone": "America/Los_Angeles"}).status_code == 302

    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "2030年6月20日(木) 09:00" in dashboard and "2030年6月21日" not in dashboard
    slot_page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert '<h1 class="when">2030年6月20日(木) 09:00〜10:00</h1>' in slot_page
    detail = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert "時刻はロサンゼルス時間で入力してください。" in detail
    assert "America/Los_Angeles" not in detail
    move = client.get(f"/slots/{slot.id}/move").get_data(as_text=True)
    assert 'value="2030-06-20T09:00"' in move and "時刻はロサンゼルス時間で入力してください。" in move

    assert client.post(f"/slots/{slot.id}/move", {"starts_at": "2030-06-20T10:30"}).status_code == 302
    db.session.refresh(slot)
    assert slot.starts_at == datetime(2030, 6, 20, 17, 30, tzinfo=timezone.utc)
    client.post(f"/services/{service.id}", {"starts_at": "2030-12-20T09:00"})  # PST, UTC−8
    db.session.rollback()
    assert {s.starts_at for s in service.slots} >= {datetime(2030, 12, 20, 17, 0, tzinfo=timezone.utc)}


def test_a_lesson_that_ends_at_midnight_ends_at_24_00_for_hosts_and_guests(client, login, lesson, make_booking,
                                                                           run_jobs, smtp):
    # 23:00 Japan time, 60 minutes: 「23:00〜24:00」, never 「23:00〜00:00」 (which ends before it starts).
    host, service, slot = lesson(zone="Asia/Tokyo")
    slot.starts_at = datetime(2030, 6, 20, 14, 0, tzinfo=timezone.utc)
    db.session.commit()
    make_booking(slot, "田中 花子", "hanako@example.com")
    login(host)
    for url in ("/dashboard", "/dashboard/upcoming", f"/services/{service.id}", f"/slots/{slot.id}"):
        page = client.get(url).get_data(as_text=True)
        assert "2030年6月20日(木) 23:00〜24:00" in page and "〜00:00" not in page, url
    run_jobs()
    [confirmation] = smtp.wait_for(1)
    assert "2030年6月20日(木) 23:00〜24:00" in body_text(confirmation)
    # Later than midnight it says the next day: 90 minutes end 「翌00:30」; English says so in words.
    assert clock.format_range_local(slot.starts_at, slot.starts_at + timedelta(minutes=90)) == \
        "2030年6月20日(木) 23:00〜翌00:30"
    assert clock.format_range_local(slot.starts_at, slot.ends_at, locale="en") == "Thu, Jun 20, 2030 23:00–24:00"
    assert clock.format_end_local(slot.starts_at, slot.starts_at + timedelta(minutes=90), locale="en") == \
        "00:30 (next day)"
    # A range within the day is unchanged, and so is an end at midnight seen from another zone.
    assert clock.format_range_local(slot.starts_at, slot.ends_at, "America/Los_Angeles") == \
        "2030年6月20日(木) 07:00〜08:00"


def test_the_bulk_composer_reads_and_labels_the_send_time_in_the_hosts_zone(client, login, lesson, make_booking):
    host, service, slot = lesson()
    make_booking(slot, "佐藤 一郎", "ichiro@example.com")
    login(host)
    url = f"/messages/new?service_id={service.id}"
    assert "送信日時（ロサンゼルス時間）" in client.get(url).get_data(as_text=True)
    response = client.post(url, {"slot_ids": slot.id, "subject": "持ち物", "body": "{slot_datetime}からです",
                                 "send_mode": "schedule", "scheduled_at": "2030-06-19T08:00", "action": "send"})
    assert response.status_code == 302, response.get_data(as_text=True)
    message = db.session.query(Message).one()
    assert message.scheduled_at == datetime(2030, 6, 19, 15, 0, tzinfo=timezone.utc)  # 08:00 PDT
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2030年6月19日(水) 08:00に送信します" in detail
    edit = client.get(f"/messages/{message.id}/edit").get_data(as_text=True)
    assert "送信日時（ロサンゼルス時間）" in edit and 'value="2030-06-19T08:00"' in edit

    preview = client.post(url, {"slot_ids": slot.id, "subject": "持ち物", "body": "{slot_datetime}からです",
                                "send_mode": "now", "action": "preview"}).get_data(as_text=True)
    assert "ロサンゼルス時間 2030年6月20日(木) 09:00（日本時間 2030年6月21日(金) 01:00）からです" in preview
    assert "開催日時（日本時間）" not in preview  # the placeholder's label no longer claims Japan time

    client.post("/settings/account", {"timezone": "Asia/Tokyo"})
    assert "送信日時（日本時間）" in client.get(url).get_data(as_text=True)


# --- Zoom's daily budget comes back at 00:00 UTC ------------------------------------------------

@pytest.mark.parametrize("zone,today,reset,when", [
    ("America/Los_Angeles", datetime(2026, 7, 1, 3, 0, tzinfo=timezone.utc), "17:00", "毎日"),   # PDT
    ("America/Los_Angeles", datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc), "16:00", "毎日"),  # PST
    ("Asia/Tokyo", datetime(2026, 7, 1, 3, 0, tzinfo=timezone.utc), "09:00", "毎朝"),
])
def test_the_zoom_budget_reset_is_shown_in_the_hosts_zone(client, link_zoom, make_host, make_service, make_slot,
                                                          zone, today, reset, when):
    from app.queue import get_redis
    from app.zoom import link

    host = in_zone(make_host(), zone)
    link_zoom(host)
    clock.travel_to(today)
    # A full day's budget is not worth a line; a low one says when it comes back, in the host's zone.
    assert "URLを発行・変更できます" not in client.get("/settings/zoom").get_data(as_text=True)
    connection_id = db.session.query(ZoomConnection).filter_by(host_id=host.id).one().id
    get_redis().set(link.budget_key(connection_id, today.date()), 88)
    settings = client.get("/settings/zoom").get_data(as_text=True)
    assert f"本日あと12回URLを発行・変更できます（{when}{reset}に回復）" in settings

    slot = make_slot(make_service(host))
    db.session.add(Meeting(slot_id=slot.id, host_id=host.id, status=MeetingStatus.FAILED,
                               failure=MeetingFailure.DAILY_LIMIT))
    db.session.commit()
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert f"Zoomの1日の発行上限に達したため、発行できていません。上限は{reset}に戻ります。" in page
    assert "毎日9:00" not in page and "毎日9:00" not in settings


# --- guests read the time in words, and in Japan time ------------------------------------------

def test_guests_of_a_host_in_los_angeles_read_los_angeles_and_japan_time(client, lesson, run_jobs, smtp):
    host, service, slot = lesson()
    page = client.get(f"/s/{service.public_id}").get_data(as_text=True)
    assert "開催日時（ロサンゼルス時間）" in page
    assert "2030年6月20日(木) 09:00〜10:00（日本時間 2030年6月21日(金) 01:00〜02:00）" in words(page)

    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                       "guest_email": "ichiro@example.com", "confirm": "1"})
    booked = client.get(response.headers["Location"]).get_data(as_text=True)
    assert LA_LESSON in words(booked)
    run_jobs()
    [confirmation] = smtp.to("ichiro@example.com")
    assert LA_LESSON in body_text(confirmation) and LA_LESSON in words(body_html(confirmation))

    cancel_url = response.headers["Location"].replace(f"/s/{service.public_id}/booked/", "/c/")
    cancel = client.get(cancel_url).get_data(as_text=True)
    assert LA_LESSON in words(cancel)
    for text in (page, booked, cancel, body_text(confirmation), body_html(confirmation)):
        assert "America/Los_Angeles" not in text


def test_an_english_guest_reads_the_zone_in_english(client, lesson, run_jobs, smtp):
    host, service, slot = lesson()
    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "Ann Lee",
                                                       "guest_email": "ann@example.com", "confirm": "1"})
    refresh()  # the test's one app context would keep the locale of the earlier (Japanese) request
    booked = client.get(response.headers["Location"], headers={"Accept-Language": "en"}).get_data(as_text=True)
    english = "Thu, Jun 20, 2030 09:00–10:00 Los Angeles Time (Fri, Jun 21, 2030 01:00–02:00 Japan Time)"
    assert english in words(booked)
    db.session.query(Delivery).update({"locale": "en"})  # as an English guest's email is written
    db.session.commit()
    run_jobs()
    [confirmation] = smtp.to("ann@example.com")
    assert english in body_text(confirmation)
    assert "America/Los_Angeles" not in body_text(confirmation)


def test_guests_of_a_host_in_japan_read_japan_time_once(client, lesson, run_jobs, smtp):
    host, service, slot = lesson(zone="Asia/Tokyo")
    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤 一郎",
                                                       "guest_email": "ichiro@example.com", "confirm": "1"})
    booked = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "日本時間 2030年6月21日(金) 01:00〜02:00" in booked
    run_jobs()
    [confirmation] = smtp.to("ichiro@example.com")
    assert "日本時間 2030年6月21日(金) 01:00〜02:00" in body_text(confirmation)
    assert body_text(confirmation).count("日本時間") == 1
