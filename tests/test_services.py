"""Services and slots: creating, validation, isolation between hosts, moving and cancelling."""
import re
from datetime import timedelta

import pytest

from app import clock
from app.extensions import db
from app.models import Booking, BookingStatus, Service, Slot, SlotStatus, Venue
from tests.conftest import body_text

SERVICE_FORM = {"kind": "online", "title": "ヨガ入門", "description": "初心者向け", "duration_minutes": "60",
                "capacity": "4", "venue": "zoom", "host_notes": "ヨガマットをご用意ください"}


def local_input(delta: timedelta) -> str:
    """A datetime-local value in Asia/Tokyo, ``delta`` from now."""
    return clock.to_local(clock.now() + delta).strftime("%Y-%m-%dT%H:%M")


def test_host_creates_each_kind_of_service(client, login, make_host):
    login(make_host())
    for kind, venue in (("online", "zoom"), ("class_event", "in_person"), ("private", "manual_url"),
                        ("subscription", "manual_url")):
        address = {"venue_address": "東京都渋谷区神南1-2-3"} if venue == "in_person" else {}
        response = client.post("/services/new", {**SERVICE_FORM, "kind": kind, "venue": venue, **address})
        assert response.status_code == 302
    kinds = {s.kind.value for s in db.session.query(Service).all()}
    assert kinds == {"online", "class_event", "private", "subscription"}


@pytest.mark.parametrize("field,value,message", [
    ("capacity", "0", "定員は1〜1000人"),
    ("duration_minutes", "-5", "所要時間は1〜1440分"),
    ("duration_minutes", "abc", "所要時間"),
    ("title", "あ" * 101, "タイトルは100文字以内"),
    ("host_notes", "x" * 2001, "連絡事項は2000文字以内"),
    ("venue", "zoom", "オンラインタイプのサービスでのみ"),
])
def test_bad_service_input_is_explained_and_nothing_saved(client, login, make_host, field, value, message):
    login(make_host())
    data = {**SERVICE_FORM, field: value}
    if field == "venue":
        data["kind"] = "class_event"
    page = client.post("/services/new", data).get_data(as_text=True)
    assert message in page
    assert 'value="ヨガ入門"' in page or field == "title"  # what was typed is kept
    assert db.session.query(Service).count() == 0


def test_hosts_never_see_or_change_each_others_services(client, login, make_host, make_service, make_slot):
    other = make_service(make_host(), title="他人のサービス")
    slot = make_slot(other)
    login(make_host())
    assert client.get(f"/services/{other.id}").status_code == 404
    assert client.get(f"/services/{other.id}/edit").status_code == 404
    assert client.post(f"/services/{other.id}/edit", {**SERVICE_FORM}, form_url="/services/new").status_code == 404
    assert client.post(f"/slots/{slot.id}/cancel", form_url="/services/new").status_code == 404
    assert client.get(f"/slots/{slot.id}/move").status_code == 404
    assert "他人のサービス" not in client.get("/services").get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Slot, slot.id).status == SlotStatus.OPEN


def test_add_slot_in_host_time_zone_and_refuse_the_past(client, login, make_host, make_service):
    service = make_service(make_host())
    login(service.host)
    url = f"/services/{service.id}"
    assert "過去の日時は選べません" in client.post(url, {"starts_at": local_input(-timedelta(hours=1))}).get_data(as_text=True)
    client.post(url, {"starts_at": "2030-06-20T10:00"})
    slot = db.session.query(Slot).one()
    assert slot.starts_at.isoformat() == "2030-06-20T01:00:00+00:00"  # stored in UTC
    assert slot.capacity == service.capacity
    assert "2030年6月20日(木) 10:00" in client.get(url).get_data(as_text=True)


def test_dashboard_shows_upcoming_slots_with_guests(client, login, make_host, make_service, make_slot, make_booking):
    service = make_service(make_host(), title="朝ヨガ")
    slot = make_slot(service)
    make_booking(slot, name="鈴木 花", email="hana@example.com")
    login(service.host)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "朝ヨガ" in page and "鈴木 花" in page and "hana@example.com" in page and "予約 1名／定員3名" in page


def test_moving_a_slot_tells_booked_guests(client, login, make_host, make_service, make_slot, make_booking,
                                           run_jobs, smtp):
    service = make_service(make_host(), title="朝ヨガ")
    slot = make_slot(service)
    make_booking(slot, email="a@example.com")
    run_jobs()
    smtp.wait_for(1)
    login(service.host)
    client.post(f"/slots/{slot.id}/move", {"starts_at": "2031-01-10T09:30"})
    run_jobs()
    moved = smtp.wait_for(2)[1]
    assert moved["Subject"] == "【日時変更】朝ヨガ"
    assert "2031年1月10日(金) 09:30" in body_text(moved)


def test_cancelling_a_slot_cancels_bookings_and_tells_guests(client, login, make_host, make_service, make_slot,
                                                            make_booking, run_jobs, smtp):
    service = make_service(make_host(), title="朝ヨガ")
    slot = make_slot(service)
    make_booking(slot, email="a@example.com")
    make_booking(slot, email="b@example.com")
    run_jobs()
    smtp.wait_for(2)
    login(service.host)
    assert "a@example.com" in client.get(f"/slots/{slot.id}/cancel").get_data(as_text=True)
    client.post(f"/slots/{slot.id}/cancel")
    run_jobs()
    notices = [m for m in smtp.wait_for(4) if m["Subject"] == "【開催中止】朝ヨガ"]
    assert sorted(m["To"].addresses[0].addr_spec for m in notices) == ["a@example.com", "b@example.com"]
    db.session.rollback()
    assert db.session.get(Slot, slot.id).status == SlotStatus.CANCELLED
    assert {b.status for b in db.session.query(Booking).all()} == {BookingStatus.CANCELLED}


def chosen(page: str, name: str) -> list[str]:
    """The values the form shows as chosen for field ``name``: checked radios, selected options."""
    radios = [tag for tag in re.findall(r"<input\b[^>]*>", page)
              if f'name="{name}"' in tag and re.search(r"\schecked\b", tag)]
    select = re.search(rf'<select\b[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.DOTALL)
    options = re.findall(r"<option\b[^>]*>", select[1]) if select else []
    return [re.search(r'value="([^"]*)"', tag)[1] for tag in radios + [o for o in options
                                                                        if re.search(r"\sselected\b", o)]]


def test_edit_keeps_venue_and_kind(client, login, make_host, make_service):
    service = make_service(make_host(), venue="manual_url", kind="private")
    login(service.host)
    page = client.get(f"/services/{service.id}/edit").get_data(as_text=True)
    assert chosen(page, "venue") == ["manual_url"] and chosen(page, "kind") == ["private"]
    # Saved as shown, with a new title only (what a browser sends back): venue and kind stay.
    client.post(f"/services/{service.id}/edit", {**SERVICE_FORM, "kind": chosen(page, "kind")[0],
                                                 "venue": chosen(page, "venue")[0], "title": "新しい名前"})
    db.session.rollback()
    assert db.session.get(Service, service.id).title == "新しい名前"
    assert db.session.get(Service, service.id).venue == Venue.MANUAL_URL
    assert db.session.get(Service, service.id).kind.value == "private"
