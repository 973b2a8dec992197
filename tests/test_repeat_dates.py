"""「毎週の日時をまとめて追加」 (app/services/repeat.py and its page) and the service's guest reschedule cutoff."""
import re
from datetime import date, datetime, time, timedelta, timezone

import pytest
from playwright.sync_api import expect

from app import clock
from app.extensions import db
from app.models import Service, Slot, SlotStatus
from app.services import repeat, slots
from tests.factories import PASSWORD

#: Wednesday 2030-06-05 09:00 in Japan.
NOW = datetime(2030, 6, 5, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def at_now(app):
    clock.travel_to(NOW)
    yield
    clock.reset()


def jst(y, m, d, h, mi=0):
    return clock.local_to_utc(datetime(y, m, d, h, mi))


def slot_at(service, starts_at):
    slot = slots.add_slot(service, starts_at)
    db.session.commit()
    return slot


def local_starts(service, tz="Asia/Tokyo"):
    rows = db.session.scalars(select_slots(service)).all()
    return [clock.to_local(s.starts_at, tz).strftime("%Y-%m-%d %H:%M") for s in rows]


def select_slots(service):
    from sqlalchemy import select
    return select(Slot).where(Slot.service_id == service.id, Slot.status == SlotStatus.OPEN).order_by(Slot.starts_at)


def preview_url(service, **args):
    query = {"start_date": "2030-06-05", "weekday": "1", "at": "20:00", "count": "8"} | args
    return f"/services/{service.id}/repeat?" + "&".join(f"{k}={v}" for k, v in query.items())


def confirm(client, service, dates=None, **args):
    """POST the preview's form as a browser does: its checked boxes unless ``dates`` is given."""
    url = preview_url(service, **args)
    page = client.get(url).get_data(as_text=True)
    if dates is None:
        dates = re.findall(r'name="dates" value="([^"]+)"\s+checked', page)
    data = {"start_date": "2030-06-05", "weekday": "1", "at": "20:00", "count": "8"} | args
    data["dates"] = dates
    return client.post(f"/services/{service.id}/repeat", data, form_url=url, follow_redirects=True)


# --- the plan ------------------------------------------------------------------------------

def test_every_tuesday_at_20_for_8_weeks_from_the_first_tuesday(at_now, make_host, make_service):
    service = make_service(make_host(), duration_minutes=60)
    planned = repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(20), 8, weekday=1)
    local = [clock.to_local(d.starts_at) for d in planned]
    assert local[0].date() == date(2030, 6, 11)  # the Wednesday's next Tuesday
    assert [d.date() for d in local] == [date(2030, 6, 11) + timedelta(weeks=n) for n in range(8)]
    assert {(d.weekday(), d.hour, d.minute) for d in local} == {(1, 20, 0)}
    assert all(d.reason is None and d.chosen_by_default for d in planned)
    assert planned[0].ends_at - planned[0].starts_at == timedelta(minutes=60)


def test_a_dst_zone_keeps_the_local_time_across_the_change(app, make_host, make_service):
    clock.travel_to(datetime(2030, 2, 1, tzinfo=timezone.utc))
    try:
        service = make_service(make_host())
        # Los Angeles moves to PDT on Sunday 2030-03-10.
        planned = repeat.plan_weekly(service, "America/Los_Angeles", date(2030, 3, 1), time(20), 4, weekday=1)
    finally:
        clock.reset()
    local = [clock.to_local(d.starts_at, "America/Los_Angeles") for d in planned]
    assert [(d.day, d.hour) for d in local] == [(5, 20), (12, 20), (19, 20), (26, 20)]
    assert [d.starts_at.hour for d in planned] == [4, 3, 3, 3]  # 20:00 PST = 04:00Z, 20:00 PDT = 03:00Z


def test_past_existing_and_overlapping_dates_are_flagged(at_now, make_host, make_service):
    host = make_host()
    service = make_service(host, duration_minutes=60)
    other = make_service(host, title="個別レッスン", duration_minutes=90)
    elsewhere = make_service(make_host(), title="他のホスト")
    slot_at(service, jst(2030, 6, 18, 20))            # the same service, same start: exists
    slot_at(other, jst(2030, 6, 25, 19))              # 19:00–20:30 overlaps 20:00–21:00
    slot_at(other, jst(2030, 7, 2, 18, 30))           # 18:30–20:00 only touches: no clash
    slot_at(service, jst(2030, 7, 9, 20, 30))         # the same service, 20:30: overlaps
    cancelled = slot_at(other, jst(2030, 7, 16, 20))  # cancelled: no clash
    cancelled.status = SlotStatus.CANCELLED
    slot_at(elsewhere, jst(2030, 7, 23, 20))          # another host's: no clash
    db.session.commit()

    # Wednesday 2030-06-05, from 08:00 (past: it is 09:00) every week.
    planned = repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(8), 1)
    assert planned[0].reason == repeat.PAST and not planned[0].addable

    planned = repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 11), time(20), 7)
    assert [d.reason for d in planned] == [None, "exists", "overlap", None, "overlap", None, None]
    assert [d.addable for d in planned] == [True, False, True, True, True, True, True]
    assert [title for _, title, _, _ in planned[2].clashes] == ["個別レッスン"]


def test_count_is_limited_to_52(at_now, make_host, make_service):
    service = make_service(make_host())
    with pytest.raises(ValueError):
        repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(20), 53)
    assert len(repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(20), 52)) == 52


# --- the page ------------------------------------------------------------------------------

def test_preview_then_add_only_the_dates_without_clashes(at_now, make_host, make_service, login, client):
    host = make_host()
    service = make_service(host, duration_minutes=60)
    other = make_service(host, title="個別レッスン", duration_minutes=90)
    slot_at(service, jst(2030, 6, 18, 20))
    slot_at(other, jst(2030, 6, 25, 19))
    login(host)

    page = client.get(preview_url(service)).get_data(as_text=True)
    assert "2030年6月11日(火) 20:00〜21:00" in page
    assert "この日時はすでに登録済みです。" in page
    assert "「個別レッスン」2030年6月25日(火) 19:00〜20:30 と重なっています。" in page
    assert Slot.query.filter_by(service_id=service.id).count() == 1  # the preview adds nothing

    text = confirm(client, service).get_data(as_text=True)
    assert "開催日時を6件追加しました。" in text
    assert ("追加しなかった日時（2件）: 2030年6月18日(火) 20:00（すでに登録済み）、"
            "2030年6月25日(火) 20:00（ほかの開催日時と重なっています）") in text
    assert local_starts(service) == ["2030-06-11 20:00", "2030-06-18 20:00"] + [
        f"2030-{d} 20:00" for d in ("07-02", "07-09", "07-16", "07-23", "07-30")]


def test_an_overlapping_date_is_added_when_chosen(at_now, make_host, make_service, login, client):
    host = make_host()
    service = make_service(host)
    other = make_service(host, title="個別レッスン")
    slot_at(other, jst(2030, 6, 11, 20, 30))
    login(host)
    keys = [d.key for d in repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(20), 2, weekday=1)]
    text = confirm(client, service, dates=keys, count="2").get_data(as_text=True)
    assert "開催日時を2件追加しました。" in text and "追加しなかった" not in text
    assert local_starts(service) == ["2030-06-11 20:00", "2030-06-18 20:00"]


def test_a_dst_host_sees_and_gets_local_20_00(make_host, make_service, login, client, app):
    clock.travel_to(datetime(2030, 2, 1, tzinfo=timezone.utc))
    try:
        host = make_host()
        host.timezone = "America/Los_Angeles"
        db.session.commit()
        service = make_service(host)
        login(host)
        args = {"start_date": "2030-03-01", "count": "4"}
        page = client.get(preview_url(service, **args)).get_data(as_text=True)
        assert "ロサンゼルス時間" in page
        for day in ("3月5日(火)", "3月12日(火)", "3月19日(火)", "3月26日(火)"):
            assert f"2030年{day} 20:00〜21:00" in page
        assert "開催日時を4件追加しました。" in confirm(client, service, **args).get_data(as_text=True)
        assert local_starts(service, "America/Los_Angeles") == [
            "2030-03-05 20:00", "2030-03-12 20:00", "2030-03-19 20:00", "2030-03-26 20:00"]
    finally:
        clock.reset()


def test_more_than_52_weeks_is_refused_in_japanese(at_now, make_host, make_service, login, client):
    host = make_host()
    service = make_service(host)
    login(host)
    page = client.get(preview_url(service, count="53")).get_data(as_text=True)
    assert "回数は1〜52回（1年分）までです。" in page
    assert 'id="repeat-preview"' not in page
    response = confirm(client, service, dates=["20300611T1100Z"], count="53")
    assert "回数は1〜52回（1年分）までです。" in response.get_data(as_text=True)
    assert Slot.query.filter_by(service_id=service.id).count() == 0


def test_nothing_chosen_adds_nothing(at_now, make_host, make_service, login, client):
    host = make_host()
    service = make_service(host)
    login(host)
    text = confirm(client, service, dates=[]).get_data(as_text=True)
    assert "追加できる日時が選ばれていません。" in text
    assert Slot.query.filter_by(service_id=service.id).count() == 0


def test_without_csrf_nothing_is_added(at_now, make_host, make_service, login, client):
    host = make_host()
    service = make_service(host)
    login(host)
    keys = [d.key for d in repeat.plan_weekly(service, "Asia/Tokyo", date(2030, 6, 5), time(20), 8, weekday=1)]
    response = client.post_raw(f"/services/{service.id}/repeat", data={
        "start_date": "2030-06-05", "weekday": "1", "at": "20:00", "count": "8", "dates": keys})
    assert response.status_code == 400
    assert Slot.query.filter_by(service_id=service.id).count() == 0


def test_another_hosts_service_is_404(at_now, make_host, make_service, login, client):
    service = make_service(make_host())
    intruder = make_host()
    mine = make_service(intruder)
    login(intruder)
    assert client.get(preview_url(service)).status_code == 404
    url = f"/services/{service.id}/repeat"
    response = client.post(url, {"start_date": "2030-06-05", "weekday": "1", "at": "20:00", "count": "8",
                                 "dates": ["20300611T1100Z"]}, form_url=preview_url(mine))
    assert response.status_code == 404
    assert Slot.query.filter_by(service_id=service.id).count() == 0


def test_a_failure_half_way_adds_nothing(at_now, make_host, make_service, login, client, monkeypatch):
    host = make_host()
    service = make_service(host)
    login(host)
    real, calls = slots.add_slot, []

    def add_then_fail(svc, starts_at):
        calls.append(starts_at)
        if len(calls) == 3:
            raise slots.SlotTaken()
        return real(svc, starts_at)

    monkeypatch.setattr(slots, "add_slot", add_then_fail)
    text = confirm(client, service).get_data(as_text=True)
    assert len(calls) == 3
    assert "何も追加していません" in text
    assert Slot.query.filter_by(service_id=service.id).count() == 0


def test_the_service_page_links_to_the_repeat_form(make_host, make_service, login, client):
    host = make_host()
    service = make_service(host)
    login(host)
    page = client.get(f"/services/{service.id}").get_data(as_text=True)
    assert f'href="/services/{service.id}/repeat"' in page


# --- the guest reschedule cutoff ---------------------------------------------------------

SERVICE_FORM = {"kind": "online", "title": "英会話", "description": "", "duration_minutes": "60", "capacity": "3",
                "venue": "manual_url", "venue_address": "", "meeting_url": "", "host_notes": "",
                "cancellation_policy": ""}


def test_new_service_defaults_to_24_hours_and_the_host_changes_it(make_host, login, client):
    host = make_host()
    login(host)
    form = client.get("/services/new").get_data(as_text=True)
    assert "予約者による日時の変更" in form
    assert re.search(r'<option selected value="24">開始の24時間前まで</option>', form)
    client.post("/services/new", SERVICE_FORM | {"reschedule_cutoff_hours": "72"})
    service = db.session.scalars(db.select(Service).filter_by(host_id=host.id)).one()
    assert service.reschedule_cutoff_hours == 72
    assert "予約者による日時の変更: 開始の72時間前まで" in client.get(f"/services/{service.id}").get_data(as_text=True)

    edit = f"/services/{service.id}/edit"
    assert re.search(r'<option selected value="72">', client.get(edit).get_data(as_text=True))
    client.post(edit, SERVICE_FORM | {"reschedule_cutoff_hours": ""})
    db.session.refresh(service)
    assert service.reschedule_cutoff_hours is None
    assert re.search(r'<option selected value="">受け付けない</option>', client.get(edit).get_data(as_text=True))
    assert "予約者による日時の変更: 受け付けない" in client.get(f"/services/{service.id}").get_data(as_text=True)

    response = client.post(edit, SERVICE_FORM | {"reschedule_cutoff_hours": "5"})
    assert response.status_code == 200  # not a choice: the form again
    db.session.refresh(service)
    assert service.reschedule_cutoff_hours is None


def test_saving_without_the_cutoff_keeps_it(make_host, make_service):
    from app.services import catalog
    service = make_service(make_host(), reschedule_cutoff_hours=3)
    values = dict(kind="online", title="英会話", description="", duration_minutes=60, capacity=3, venue="zoom",
                  host_notes="")
    catalog.save_service(service, **values)
    assert service.reschedule_cutoff_hours == 3


# --- in a browser, on a phone and a desktop ----------------------------------------------

def log_in(page, host):
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("input[name=email]", host.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url("**/dashboard")


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_host_adds_every_tuesday_in_one_form(page, live_server, at_now, make_host, make_service, width):
    host = make_host()
    service = make_service(host, title="夜の英会話", duration_minutes=60)
    other = make_service(host, title="個別レッスン", duration_minutes=90)
    slot_at(service, jst(2030, 6, 18, 20))   # exists
    slot_at(other, jst(2030, 6, 25, 19))     # overlaps 20:00–21:00
    page.set_viewport_size({"width": width, "height": 812})
    log_in(page, host)

    page.goto(f"/services/{service.id}")
    page.get_by_role("link", name="毎週の日時をまとめて追加").click()
    page.get_by_label("開始日").fill("2030-06-05")
    page.get_by_label("曜日").select_option(label="火曜日")
    page.get_by_label("時刻").fill("20:00")
    page.get_by_label("回数（週）").fill("8")
    page.get_by_role("button", name="日時を確認する").click()

    preview = page.locator("#repeat-preview")
    expect(preview.get_by_text("追加する日時（日本時間）")).to_be_visible()
    expect(preview.locator(".repeat-date")).to_have_count(8)
    expect(preview.get_by_label("2030年6月11日(火) 20:00〜21:00")).to_be_checked()
    existing = preview.get_by_label("2030年6月18日(火) 20:00〜21:00")
    expect(existing).to_be_disabled()
    expect(preview.get_by_text("この日時はすでに登録済みです。")).to_be_visible()
    overlapping = preview.get_by_label("2030年6月25日(火) 20:00〜21:00")
    expect(overlapping).not_to_be_checked()
    expect(preview.get_by_text("「個別レッスン」2030年6月25日(火) 19:00〜20:30 と重なっています。")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    # The host leaves out July 30 and adds the rest.
    preview.get_by_label("2030年7月30日(火) 20:00〜21:00").uncheck()
    page.get_by_role("button", name="チェックした日時を追加する").click()
    page.wait_for_url(re.compile(rf"/services/{service.id}$"))
    expect(page.get_by_text("開催日時を5件追加しました。")).to_be_visible()
    expect(page.get_by_text("2030年6月18日(火) 20:00（すでに登録済み）、2030年6月25日(火) 20:00（ほかの開催日時と重なっています）、"
                            "2030年7月30日(火) 20:00（選ばれていません）", exact=False)).to_be_visible()
    db.session.rollback()
    assert local_starts(service) == [f"2030-{d} 20:00" for d in ("06-11", "06-18", "07-02", "07-09", "07-16", "07-23")]


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_a_los_angeles_host_keeps_20_00_across_the_dst_change(page, live_server, make_host, make_service, width):
    clock.travel_to(datetime(2030, 2, 1, tzinfo=timezone.utc))
    try:
        host = make_host()
        host.timezone = "America/Los_Angeles"
        db.session.commit()
        service = make_service(host)
        page.set_viewport_size({"width": width, "height": 812})
        log_in(page, host)
        page.goto(f"/services/{service.id}/repeat")
        page.get_by_label("開始日").fill("2030-03-01")
        page.get_by_label("曜日").select_option(label="火曜日")
        page.get_by_label("時刻").fill("20:00")
        page.get_by_label("回数（週）").fill("4")
        page.get_by_role("button", name="日時を確認する").click()
        preview = page.locator("#repeat-preview")
        expect(preview.get_by_text("ロサンゼルス時間", exact=False).first).to_be_visible()
        for day in ("3月5日(火)", "3月12日(火)", "3月19日(火)", "3月26日(火)"):
            expect(preview.get_by_label(f"2030年{day} 20:00〜21:00")).to_be_checked()
        page.get_by_role("button", name="チェックした日時を追加する").click()
        expect(page.get_by_text("開催日時を4件追加しました。")).to_be_visible()
        db.session.rollback()
        assert local_starts(service, "America/Los_Angeles") == [
            "2030-03-05 20:00", "2030-03-12 20:00", "2030-03-19 20:00", "2030-03-26 20:00"]
    finally:
        clock.reset()
