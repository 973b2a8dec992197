"""Long lists on host pages come a page at a time: a slot's guests (with search), a service's
slots (upcoming and past tabs), the dashboard's next slots and the Zoom settings lists."""
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from hypothesis import given, settings
from hypothesis import strategies as st

from app import clock
from app.extensions import db
from app.models import Delivery, Slot, SlotStatus
from app.meetings import alerts, issuing, planning, retry, switch, timing  # noqa: F401
from app.zoom import link
from app.zoom.provider import tool as zoom_tool


def guest_names(page: str) -> list[str]:
    """The guest names in the table of a slot page, in order."""
    return re.findall(r'<tr id="booking-\d+"><td>([^<]+)<br>', page)


def book_many(make_booking, slot, n: int, prefix: str = "生徒") -> list:
    return [make_booking(slot, f"{prefix}{i:03d}", f"{prefix.lower()}{i:03d}@example.com") for i in range(1, n + 1)]


# --- a slot's guests --------------------------------------------------------------------------------

def test_a_slot_page_shows_its_guests_fifty_at_a_time(client, login, make_host, make_service, make_slot,
                                                       make_booking):
    service = make_service(make_host(), title="大人数クラス", capacity=200, venue="manual_url")
    slot = make_slot(service)
    book_many(make_booking, slot, 120)
    login(service.host)

    first = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert guest_names(first) == [f"生徒{i:03d}" for i in range(1, 51)]
    assert "予約者（120名）" in first and "120件中 1–50件" in first
    assert f'href="/slots/{slot.id}?page=2"' in first and 'rel="prev"' not in first  # 前へ is not a link

    second = client.get(f"/slots/{slot.id}?page=2").get_data(as_text=True)
    assert guest_names(second) == [f"生徒{i:03d}" for i in range(51, 101)]
    assert "120件中 51–100件" in second
    assert f'href="/slots/{slot.id}"' in second and f'href="/slots/{slot.id}?page=3"' in second  # 前へ and 次へ

    last = client.get(f"/slots/{slot.id}?page=3").get_data(as_text=True)
    assert guest_names(last) == [f"生徒{i:03d}" for i in range(101, 121)] and "120件中 101–120件" in last
    assert 'rel="next"' not in last
    # Past the end (guests cancelled while the host paged), or junk: the last and the first page.
    assert guest_names(client.get(f"/slots/{slot.id}?page=9").get_data(as_text=True)) == guest_names(last)
    assert guest_names(client.get(f"/slots/{slot.id}?page=x").get_data(as_text=True)) == guest_names(first)


def test_a_slot_page_searches_guests_by_name_or_email(client, login, make_host, make_service, make_slot,
                                                      make_booking):
    service = make_service(make_host(), capacity=200, venue="manual_url")
    slot = make_slot(service)
    book_many(make_booking, slot, 60)
    make_booking(slot, "佐藤 花子", "hanako.sato@example.com")
    make_booking(slot, "100%_満足", "percent@example.com")
    login(service.host)

    assert guest_names(client.get(f"/slots/{slot.id}?q=佐藤").get_data(as_text=True)) == ["佐藤 花子"]
    assert guest_names(client.get(f"/slots/{slot.id}?q=HANAKO.Sato").get_data(as_text=True)) == ["佐藤 花子"]
    # % and _ are matched as themselves, not as wildcards.
    assert guest_names(client.get(f"/slots/{slot.id}?q=%25_").get_data(as_text=True)) == ["100%_満足"]
    # A search that spans pages pages too, and its page links keep the search.
    page = client.get(f"/slots/{slot.id}?q=生徒0").get_data(as_text=True)
    assert len(guest_names(page)) == 50 and "60件中 1–50件" in page  # 生徒001 … 生徒060
    assert f'href="/slots/{slot.id}?page=2&amp;q=%E7%94%9F%E5%BE%920"' in page
    nothing = client.get(f"/slots/{slot.id}?q=nobody").get_data(as_text=True)
    assert guest_names(nothing) == [] and "「nobody」に一致する予約者はいません。" in nothing


def test_another_hosts_slot_page_is_not_found(client, login, make_host, make_service, make_slot, make_booking):
    slot = make_slot(make_service(make_host(), title="他人の講座"))
    make_booking(slot, "他人の生徒", "secret@example.com")
    login(make_host())
    for url in (f"/slots/{slot.id}", f"/slots/{slot.id}?page=2", f"/slots/{slot.id}?q=secret"):
        response = client.get(url)
        assert response.status_code == 404
        assert "secret@example.com" not in response.get_data(as_text=True)


def test_resending_a_url_from_a_later_page_comes_back_to_that_page(client, link_zoom, make_host, make_service,
                                                                   make_slot, make_booking, run_jobs):
    host = make_host()
    link_zoom(host)
    slot = make_slot(make_service(host, capacity=100))
    bookings = book_many(make_booking, slot, 55)
    run_jobs()
    page = client.get(f"/slots/{slot.id}?page=2").get_data(as_text=True)
    action = f"/slots/{slot.id}/resend-url?page=2"
    assert f'action="{action}"' in page and page.count("URLを再送") == 5
    assert f'name="booking_id" value="{bookings[52].id}"' in page
    response = client.post(action, {"booking_id": str(bookings[52].id)}, form_url=f"/slots/{slot.id}?page=2")
    assert response.headers["Location"] == f"/slots/{slot.id}?page=2#booking-{bookings[52].id}"
    resent = db.session.query(Delivery).filter_by(booking_id=bookings[52].id, kind="meeting_url").count()
    assert resent == 2  # the planned one and the resend


def test_resend_refuses_a_booking_of_another_slot_or_host(client, link_zoom, make_host, make_service, make_slot,
                                                          make_booking):
    other, host = make_host(), make_host()
    link_zoom(host)  # signed in as the host
    service = make_service(host)
    slot, second = make_slot(service), make_slot(service, starts_in=timedelta(days=3))
    theirs = make_booking(make_slot(make_service(other)), email="theirs@example.com")
    mine_elsewhere = make_booking(second, email="second@example.com")
    for booking in (theirs, mine_elsewhere):
        response = client.post(f"/slots/{slot.id}/resend-url", {"booking_id": str(booking.id)},
                               form_url=f"/slots/{slot.id}")
        assert response.status_code == 404
    assert client.post(f"/slots/{slot.id}/resend-url", {}, form_url=f"/slots/{slot.id}").status_code == 404


# --- a service's slots -------------------------------------------------------------------------------

def test_a_service_page_lists_upcoming_slots_soonest_first_and_past_ones_on_their_own_tab(
        client, login, make_host, make_service, make_slot):
    service = make_service(make_host(), venue="manual_url")
    upcoming = [make_slot(service, starts_in=timedelta(days=d)) for d in range(25, 0, -1)]  # added latest first
    cancelled = make_slot(service, starts_in=timedelta(days=30))
    cancelled.status = SlotStatus.CANCELLED
    past = make_slot(service, starts_in=timedelta(days=40))
    past_cancelled = make_slot(service, starts_in=timedelta(days=41), status=SlotStatus.CANCELLED)
    # Into the past directly (a slot cannot be added in the past).
    for slot, days in ((past, 3), (past_cancelled, 4)):
        slot.starts_at = clock.now().replace(microsecond=0) - timedelta(days=days)
    db.session.commit()
    login(service.host)

    first = client.get(f"/services/{service.id}").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<article class="card slot[^"]*" id="slot-(\d+)"', first)]
    soonest = sorted(upcoming, key=lambda s: s.starts_at)
    assert ids == [s.id for s in soonest[:20]]
    assert "今後の開催（26件）" in first and "過去の開催（1件）" in first and "26件中 1–20件" in first
    assert "予約者を見る" in first and f'href="/slots/{soonest[0].id}"' in first
    second = client.get(f"/services/{service.id}?page=2").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<article class="card slot[^"]*" id="slot-(\d+)"', second)]
    assert ids == [s.id for s in soonest[20:]] + [cancelled.id]  # cancelled future slots are listed too
    assert "中止済み" in second

    past_tab = client.get(f"/services/{service.id}?tab=past").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<article class="card slot[^"]*" id="slot-(\d+)"', past_tab)]
    assert ids == [past.id]  # a cancelled past slot is not listed
    assert 'class="active" aria-current="page">過去の開催（1件）' in past_tab


def test_adding_a_slot_goes_back_to_the_page_that_lists_it(client, login, make_host, make_service, make_slot):
    service = make_service(make_host(), venue="manual_url")
    for day in range(1, 21):
        make_slot(service, starts_in=timedelta(days=day))
    login(service.host)
    later = clock.to_local(clock.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/services/{service.id}", {"starts_at": later})
    slot = db.session.query(Slot).order_by(Slot.id.desc()).first()
    assert response.headers["Location"] == f"/services/{service.id}?page=2#slot-{slot.id}"
    sooner = clock.to_local(clock.now() + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/services/{service.id}", {"starts_at": sooner})
    slot = db.session.query(Slot).order_by(Slot.id.desc()).first()
    assert response.headers["Location"] == f"/services/{service.id}#slot-{slot.id}"


def test_the_list_of_services_shows_twenty_a_page_newest_first(client, login, make_host, make_service):
    host = make_host()
    services = [make_service(host, title=f"講座{i:02d}") for i in range(1, 24)]
    login(host)
    first = client.get("/services").get_data(as_text=True)
    assert re.findall(r">(講座\d\d)</a>", first) == [f"講座{i:02d}" for i in range(23, 3, -1)]
    assert "23件中 1–20件" in first
    second = client.get("/services?page=2").get_data(as_text=True)
    assert re.findall(r">(講座\d\d)</a>", second) == ["講座03", "講座02", "講座01"]
    assert services[0].id and "23件中 21–23件" in second


# --- the dashboard -----------------------------------------------------------------------------------

def test_the_dashboard_shows_the_next_ten_slots_with_their_first_five_guests(
        client, login, make_host, make_service, make_slot, make_booking):
    service = make_service(make_host(), title="毎日ヨガ", capacity=20, venue="manual_url")
    slots = [make_slot(service, starts_in=timedelta(days=d, hours=1)) for d in range(1, 13)]
    book_many(make_booking, slots[0], 7)
    login(service.host)

    page = client.get("/dashboard").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'<article class="card slot" id="slot-(\d+)"', page)]
    assert ids == [s.id for s in slots[:10]]
    assert all(f"生徒{i:03d}" in page for i in range(1, 6)) and "生徒006" not in page
    assert f'<a href="/slots/{slots[0].id}">予約者をすべて見る（7名）</a>' in page
    assert "もっと見る" in page and 'href="/dashboard/upcoming"' in page

    everything = client.get("/dashboard/upcoming").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'<tr id="slot-(\d+)"', everything)] == [s.id for s in slots]
    assert "予約 7名／定員20名" in everything and f'href="/slots/{slots[0].id}"' in everything


def test_the_dashboard_of_a_host_without_services_invites_to_create_one(client, login, make_host):
    login(make_host())
    page = client.get("/dashboard").get_data(as_text=True)
    assert "最初のサービスを作成する" in page and "サービスを作成" in page and "もっと見る" not in page


# --- the Zoom settings page ---------------------------------------------------------------------------

def test_settings_name_the_first_twenty_bookings_made_before_linking_and_count_the_rest(
        client, link_zoom, make_host, make_service, make_slot, make_booking):
    host = make_host()
    service = make_service(host, title="英会話", capacity=30)
    slot = make_slot(service, starts_in=timedelta(days=3))
    book_many(make_booking, slot, 23)
    link_zoom(host)
    page = client.get("/settings/zoom").get_data(as_text=True)
    assert "連携前のご予約（23件）" in page and "この23件にもURLを発行する" in page
    assert "生徒020" in page and "生徒021" not in page and "ほか3件" in page
    # The list and the backfill (which takes them all) apply one rule.
    connection = link.connection_for(host.id)
    preview = switch.not_covered_preview(connection, zoom_tool, 20)
    assert [b.id for b in switch.bookings_before_link(connection, zoom_tool)][:20] == [b.id for b in preview.items]
    assert preview.total == len(switch.bookings_before_link(connection, zoom_tool))


# --- dates: the cached formats are Babel's -------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
       zone=st.sampled_from(["Asia/Tokyo", "America/Los_Angeles", "Europe/London", "Australia/Lord_Howe",
                             "Asia/Kathmandu", "UTC"]),
       locale=st.sampled_from(["ja", "en", "fr"]))
def test_host_time_formats_are_exactly_babels(moment, zone, locale):
    moment = moment.replace(tzinfo=timezone.utc)
    for patterns, fast in ((clock.DATETIME_PATTERNS, clock.format_datetime_local),
                           (clock.DATE_PATTERNS, clock.format_date_local),
                           (clock.TIME_PATTERNS, clock.format_time_local)):
        lang = locale if locale in patterns else "ja"
        assert fast(moment, zone, locale) == format_datetime(moment, patterns[lang], tzinfo=ZoneInfo(zone), locale=lang)
