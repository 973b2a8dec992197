"""Google Meet under faults: no booking is silently left without a URL.

The Zoom promise of tests/test_faults.py (section 4), kept for Google Meet through the real parts:
the Google emulator serving its faults, RQ's own worker, the outbox and an aiosmtpd server. Each
test drives the host's Google Calendar into a fault and then checks a history (what the guests
and the host received, what the rows say, which events live on the emulator) against the promise:
every guest gets the URL email, or 「参加URLの準備中」 while their URL email waits for its meeting
and the host is alerted once; never two live events for one slot; a URL sent leads, through the
guest's ``/j/`` link, to the slot's live event.

    .venv/bin/python -m pytest -m faults -s tests/test_google_faults.py   # -s shows the figures

Google's own clock (the emulator's) is left alone: when the app's clock moves days ahead, the
stored access token reads as expired and the app refreshes it at the token endpoint, which
answers on its own clock, as Google would.
"""
import time
from datetime import datetime, timedelta, timezone

import pytest

from app import clock
from app.extensions import db
from app.google.client import QUOTA_RETRY_AFTER
from app.meetings import issuing, planning, timing
from app.models import Delivery, DeliveryStatus, MeetingStatus
from app.services import slots
from tests.drivers import JobDriver
from tests.test_faults import figures

pytestmark = pytest.mark.faults

GOOGLE_FAULTS = ("429", "403_rate", "403_quota", "500", "503", "timeout", "html")
#: The 429's ``Retry-After`` (seconds): none of RQ's own back-off intervals.
RETRY_AFTER = 2
#: Our client gives up after this (production: 10 s); the emulator's ``timeout`` fault sleeps longer,
#: then does what was asked.
CLIENT_TIMEOUT = 0.3
FAULT_SLEEP = 0.8
ACCOUNT = "free@gmail.test"
EVENTS = "/calendar/v3/calendars/primary/events"
RELINK = "【要対応】Google Meet連携の再設定をお願いします"


def trouble(title: str) -> str:
    return f"【要対応】Google MeetのURLを用意できませんでした（{title}）"


@pytest.fixture
def google_driver(app, google, monkeypatch):
    """Moves the app's clock and runs what would run meanwhile: RQ's scheduled jobs whose time has
    come (Retry back-offs, Retry-After), the queued jobs, and the outbox sweep."""
    monkeypatch.setitem(app.config, "GOOGLE_HTTP_TIMEOUT", CLIENT_TIMEOUT)
    google.configure(timeout_seconds=FAULT_SLEEP)

    class Driver(JobDriver):
        def preflight(self, slot) -> None:
            self.travel_to(slot.starts_at - timing.PREFLIGHT_LEAD)
            planning.run_preflights()
            self.pump()

        def url_time(self, slot) -> None:
            """The URL emails' moment, then a minute on: the host notice due with them waits for
            their outcome (``NOTICE_WAITS_FOR_GUESTS``) and goes then."""
            self.travel_to(slot.starts_at - timing.URL_LEAD)
            self.pump()
            self.travel_to(slot.starts_at - timing.URL_LEAD + timedelta(minutes=2))
            self.pump()

        def through_url_time(self, slot) -> None:
            """The slot's pre-flight, then its URL-email moment, with what runs after each."""
            self.preflight(slot)
            self.url_time(slot)

    yield Driver(app)


def live_events(google) -> list[dict]:
    return [e for e in google.events(ACCOUNT) if e["status"] != "cancelled"]


def join_url_of(event: dict) -> str:
    video = [p["uri"] for p in (event.get("conferenceData") or {}).get("entryPoints", [])
             if p.get("entryPointType") == "video"]
    return video[0] if video else event.get("hangoutLink", "")


def google_outcomes(smtp, title: str, bookings, host) -> dict:
    """Per guest: ``url``, ``fallback`` (told it is being prepared, the URL email waiting), ``both``
    or ``nothing``; the host's alerts, and every subject the host received."""
    outcome = {}
    for booking in bookings:
        texts = {m["Subject"]: m.get_body(preferencelist=("plain",)).get_content()
                 for m in smtp.to(booking.guest_email)}
        url = f"【参加URLのご案内】{title}" in texts
        fallback = "自動でお送りします" in texts.get(f"【参加URLの準備中】{title}", "")
        outcome[booking.guest_email] = ("both" if url and fallback else "url" if url else
                                        "fallback" if fallback else "nothing")
    host_subjects = [m["Subject"] for m in smtp.to(host.email)]
    alerts = [s for s in host_subjects if s in (trouble(title), RELINK)]
    return {"guests": outcome, "alerts": alerts, "host": host_subjects}


def assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, case) -> dict:
    result = google_outcomes(smtp, title, bookings, host)
    db.session.rollback()
    urls = {d.to_email: d for d in db.session.query(Delivery).filter_by(kind="meeting_url")}
    meeting = issuing.meeting_for(bookings[0].slot_id)
    live = live_events(google)
    calls = [(c["method"], c["path"].rsplit("/", 1)[-1], c["status"]) for c in google.calls(EVENTS)]
    assert len(live) <= 1, f"{case}: {len(live)} live events on Google for one slot: {calls}"
    for booking in bookings:
        got = result["guests"][booking.guest_email]
        assert got in ("url", "fallback"), f"{case}: {booking.guest_email} got {got}"
        row = urls[booking.guest_email]
        # Sent, or told it is coming and still waiting for its meeting (never "sent" without a URL).
        assert (row.status, row.last_error.startswith("waiting:")) == (
            (DeliveryStatus.SENT, False) if got == "url" else (DeliveryStatus.PENDING, True)), (case, row.last_error)
        if got == "url":  # the link in the email leads to the slot's event, live on Google, with that Meet link
            location = client.get(f"/j/{booking.join_token}/go").headers["Location"]
            assert location.startswith("https://meet.google.com/"), (case, location)
            assert location == meeting.join_url and [join_url_of(e) for e in live if e["id"] == meeting.external_id] \
                == [location], f"{case}: the URL sent leads nowhere: {location} vs {live}"
        else:
            assert result["alerts"], f"{case}: {booking.guest_email} was told the host sends the URL; host not alerted"
    return result


def book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title, google):
    host = make_host(name="山田 花子")
    link_google(host, ACCOUNT)
    slot = make_slot(make_service(host, venue="google_meet", title=title, capacity=5), starts_in=timedelta(days=3))
    google.clear_calls()  # the log holds the meeting's calls only
    return host, slot, [make_booking(slot, email=f"guest{i}.{slot.id}@example.com") for i in (1, 2)]


def stamp(call: dict) -> float:
    return datetime.fromisoformat(call["timestamp"].replace("Z", "+00:00")).timestamp()


# --- 1. the create (events.insert) fails: once, or until Google is given up on ---------------------

@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", GOOGLE_FAULTS)
def test_google_insert_fault_never_leaves_a_booking_silently_without_url(
        kind, persistent, client, google, google_driver, make_host, link_google, make_service, make_slot,
        make_booking, smtp):
    title = f"Meet障害{kind}"
    google.inject_fault("insert", kind, times=None if persistent else 1,
                        retry_after=RETRY_AFTER if kind == "429" else None)
    if kind == "timeout":
        google_driver.settle = FAULT_SLEEP - CLIENT_TIMEOUT + 0.3  # Google makes the event after our client gave up
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    google_driver.pump()  # the issue job and its retries due now
    google_driver.through_url_time(slot)
    case = f"{kind}-{'persistent' if persistent else 'once'}"
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, case)
    inserts = google.calls(EVENTS, "POST")
    meeting = issuing.meeting_for(slot.id)
    figures(f"google insert {case}", guests=sorted(result["guests"].values()), host_alerts=len(result["alerts"]),
            inserts=len(inserts), statuses="/".join(str(c["status"]) for c in inserts),
            live_events=len(live_events(google)), meeting=meeting.status.value)
    if not persistent or kind == "timeout":
        # One fault, then Google answers; or Google did each insert after our client gave up: the
        # event is found under its id (409 → read, or events.get), so everyone gets the URL.
        assert set(result["guests"].values()) == {"url"}, (case, result)
        assert result["alerts"] == [], (case, result["alerts"])
        assert f"予約者にGoogle MeetのURLをお送りしました（{title}）" in result["host"], (case, result["host"])
    else:
        # Google never made it: each guest is told it is being prepared, the host once, and nothing says "sent".
        assert set(result["guests"].values()) == {"fallback"}, (case, result)
        assert result["alerts"] == [trouble(title)], (case, result["alerts"])
        assert not [s for s in result["host"] if "お送りしました" in s], (case, result["host"])
        assert live_events(google) == [] and meeting.status == MeetingStatus.FAILED and meeting.failure, case
        assert len(inserts) > 2, f"{case}: given up without retrying: {len(inserts)} inserts"
    assert len(result["alerts"]) <= 1, f"{case}: the host was alerted {len(result['alerts'])} times for one slot"
    retries = [at for function, at in google_driver.released if function == "app.jobs.issue_meeting"]
    if kind == "429":  # the retry comes when Google said, not at one of RQ's own back-off intervals
        since = retries[0] - stamp(inserts[0])
        assert RETRY_AFTER - 1 <= since <= RETRY_AFTER + 1, (case, since)
    if kind == "403_quota":  # Google's abuse limit: a long wait, whatever the header said
        assert retries[0] - stamp(inserts[0]) >= QUOTA_RETRY_AFTER - 1, (case, retries[0] - stamp(inserts[0]))


def test_an_insert_google_did_after_our_client_gave_up_is_read_on_its_409_never_made_twice(
        client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    """The timed-out insert made the event; the next attempt's look for it (events.get) finds nothing
    yet (404 once), so it inserts again under the same id: Google's 409 ``duplicate`` is read, not doubled."""
    title = "Meet重複"
    google.inject_fault("insert", "timeout")
    google.inject_fault("get", "404")
    google_driver.settle = FAULT_SLEEP - CLIENT_TIMEOUT + 0.3
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    google_driver.pump()
    google_driver.through_url_time(slot)
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, "insert-409")
    inserts = google.calls(EVENTS, "POST")
    figures("google insert timeout-then-409", guests=sorted(result["guests"].values()),
            inserts="/".join(str(c["status"]) for c in inserts), live_events=len(live_events(google)))
    assert [c["status"] for c in inserts] == [200, 409]  # the first answered after our client gave up
    assert inserts[0]["json"]["id"] == inserts[1]["json"]["id"] == issuing.meeting_for(slot.id).external_id
    assert set(result["guests"].values()) == {"url"} and result["alerts"] == []
    assert len(live_events(google)) == 1


def test_a_url_email_waiting_through_a_long_google_outage_is_sent_when_google_is_back(
        client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = "Meet長時間障害"
    # Just after midnight UTC (ahead of the real clock): the URL moment, two days on, starts a UTC day
    # that the 9 hours below stay inside, whenever the suite runs.
    google_driver.travel_to(datetime.combine(clock.now().date() + timedelta(days=1), datetime.min.time(),
                                             tzinfo=timezone.utc) + timedelta(minutes=5))
    google.inject_fault("insert", "500", times=None)
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    google_driver.pump()
    google_driver.through_url_time(slot)
    due = slot.starts_at - timing.URL_LEAD
    step = timing.WAIT_FOR_MEETING_DEFAULT + timedelta(minutes=1)  # each look of the waiting URL email
    for n in range(1, 48):  # Google fails for about 9 hours (one UTC day: the cap's)
        google_driver.travel_to(due + n * step)
        google_driver.pump()
    google.clear_faults()
    for n in range(48, 51):
        google_driver.travel_to(due + n * step)
        google_driver.pump()
    db.session.rollback()
    rows = [(d.status.value, d.last_error) for d in db.session.query(Delivery).filter_by(kind="meeting_url")]
    result = google_outcomes(smtp, title, bookings, host)
    figures("google insert 500 for 9 hours, then back", guests=sorted(result["guests"].values()), rows=rows,
            meeting=issuing.meeting_for(slot.id).status.value)
    assert set(result["guests"].values()) == {"both"}, rows  # told it is coming, then the URL


# --- 2. the send-time check (events.get) fails, or finds the event deleted -------------------------

def checked_then_url_time(google, google_driver, slot, fault):
    """Issue the slot's event and pass its pre-flight; then ``fault`` on every events.get from the
    URL moment on (``times``); returns the meeting and the URL moment."""
    google_driver.pump()
    google_driver.preflight(slot)
    meeting = issuing.meeting_for(slot.id)
    assert meeting.status == MeetingStatus.ISSUED
    google.clear_calls()
    google.inject_fault("get", *fault)
    due = slot.starts_at - timing.URL_LEAD
    google_driver.travel_to(due)
    google_driver.pump()
    return meeting, due


def minutes_until_every_guest_has_the_url(google_driver, smtp, bookings, due, title, limit: timedelta) -> timedelta:
    waited = timedelta(0)
    while not all(f"【参加URLのご案内】{title}" in [m["Subject"] for m in smtp.to(b.guest_email)] for b in bookings):
        assert waited < limit, f"the URL emails still wait {waited} after they fell due"
        waited += timedelta(minutes=1)
        google_driver.travel_to(due + waited)
        google_driver.pump()
    return waited


@pytest.mark.parametrize("kind", ["500", "timeout"])
def test_a_check_google_does_not_answer_once_waits_quietly_and_sends_the_url(
        kind, client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = f"Meet確認{kind}"
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    meeting, due = checked_then_url_time(google, google_driver, slot, (kind, 1))
    waited = minutes_until_every_guest_has_the_url(google_driver, smtp, bookings, due, title, timing.CHECK_PATIENCE)
    time.sleep(FAULT_SLEEP)  # the check our client gave up on reaches the emulator's log
    case = f"get-{kind}-once"
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, case)
    gets = google.calls(f"{EVENTS}/{meeting.external_id}", "GET")
    figures(f"google check {case}", guests=sorted(result["guests"].values()),
            waited_min=int(waited.total_seconds() // 60), gets="/".join(str(c["status"]) for c in gets),
            host=result["host"])
    assert set(result["guests"].values()) == {"url"}, (case, result)  # never 「準備中」 for a check alone
    assert result["alerts"] == [], case
    assert waited <= timedelta(minutes=3), (case, waited)  # asked again 2 minutes later
    # One check for both guests' emails at the URL moment (unanswered), then answered ones (the two
    # emails, deferred a few milliseconds apart, may fall into two batches here).
    assert 2 <= len(gets) <= 1 + len(bookings) and all(c["status"] == 200 for c in gets[1:]), gets
    assert issuing.meeting_for(slot.id).external_id == meeting.external_id  # the same event: not re-issued
    assert google.calls(EVENTS, "POST") == [] and len(live_events(google)) == 1


def test_a_check_google_never_answers_sends_the_url_we_have_after_check_patience(
        client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = "Meet確認500ずっと"
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    meeting, due = checked_then_url_time(google, google_driver, slot, ("500", None))
    try:
        waited = minutes_until_every_guest_has_the_url(google_driver, smtp, bookings, due, title,
                                                       timing.CHECK_PATIENCE + timedelta(minutes=3))
    finally:
        db.session.rollback()
        figures("google check get-500-persistent", rows=[
            (d.status.value, d.last_error, d.due_at.isoformat(timespec="seconds"))
            for d in db.session.query(Delivery).filter_by(kind="meeting_url")])
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, "get-500-persistent")
    assert set(result["guests"].values()) == {"url"} and result["alerts"] == []  # the URL we have, quietly
    assert timing.CHECK_PATIENCE <= waited, waited


def test_a_check_google_does_not_answer_once_does_not_alarm_the_host(
        client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = "Meet確認通知"
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    meeting, due = checked_then_url_time(google, google_driver, slot, ("500", 1))
    minutes_until_every_guest_has_the_url(google_driver, smtp, bookings, due, title, timing.CHECK_PATIENCE)
    google_driver.travel_to(due + timing.NOTICE_WAITS_FOR_GUESTS)
    google_driver.pump()
    notices = [m["Subject"] for m in smtp.to(host.email) if "Google Meet" in m["Subject"]]
    figures("google check get-500-once host notice", notices=notices)
    assert notices == [f"予約者にGoogle MeetのURLをお送りしました（{title}）"], notices


def test_an_event_deleted_in_google_calendar_before_the_url_moment_is_issued_again(
        client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = "Meet削除済み"
    host, slot, bookings = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, title,
                                           google)
    google_driver.pump()
    google_driver.preflight(slot)
    first = issuing.meeting_for(slot.id)
    first_id, first_url = first.external_id, first.join_url
    google.cancel_event_out_of_band(ACCOUNT, first_id)  # the host deleted it in Google Calendar
    google.clear_calls()
    google_driver.url_time(slot)
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, "cancelled")
    again = issuing.meeting_for(slot.id)
    figures("google check cancelled", guests=sorted(result["guests"].values()), host=result["host"],
            inserts=len(google.calls(EVENTS, "POST")))
    assert set(result["guests"].values()) == {"url"} and result["alerts"] == []
    assert again.external_id != first_id and again.join_url != first_url
    assert [e["id"] for e in live_events(google)] == [again.external_id]
    assert len(google.calls(EVENTS, "POST")) == 1  # one new event for the two guests
    assert [c["status"] for c in google.calls(f"{EVENTS}/{first_id}", "GET")] == [200]  # one check: cancelled


# --- 3. a dead grant (the host removed our access in their Google Account) ----------------------

@pytest.mark.parametrize("when", ["before_issue", "after_issue"])
def test_a_revoked_google_grant_never_leaves_a_booking_silently_without_url(
        when, client, google, google_driver, make_host, link_google, make_service, make_slot, make_booking, smtp):
    title = f"Meet失効{when}"
    host = make_host(name="山田 花子")
    link_google(host, ACCOUNT)
    slot = make_slot(make_service(host, venue="google_meet", title=title, capacity=5), starts_in=timedelta(days=3))
    if when == "before_issue":
        assert google.revoke_grants(ACCOUNT) == 1
    bookings = [make_booking(slot, email=f"guest{i}.{slot.id}@example.com") for i in (1, 2)]
    google_driver.pump()
    if when == "after_issue":
        assert issuing.meeting_for(slot.id).status == MeetingStatus.ISSUED
        assert google.revoke_grants(ACCOUNT) == 1
    google_driver.through_url_time(slot)
    case = f"revoked-{when}"
    result = assert_nobody_silently_without_url(client, google, smtp, title, bookings, host, case)
    figures(f"google {case}", guests=sorted(result["guests"].values()), host_alerts=result["alerts"])
    assert set(result["guests"].values()) == {"fallback"}, (case, result)
    # Told to relink, and once that this slot has no URL.
    assert sorted(result["alerts"]) == sorted([RELINK, trouble(title)]), (case, result["host"])
    assert not [s for s in result["host"] if "お送りしました" in s], (case, result["host"])


# --- 4. a move (events.patch) Google refuses once ------------------------------------------------

@pytest.mark.parametrize("kind", ["429", "500"])
def test_a_move_google_refuses_once_is_retried_and_the_event_ends_at_the_new_time(
        kind, google, google_driver, make_host, link_google, make_service, make_slot, make_booking):
    host, slot, _ = book_two_guests(make_host, link_google, make_service, make_slot, make_booking, f"Meet移動{kind}",
                                    google)
    google_driver.pump()
    meeting = issuing.meeting_for(slot.id)
    google.inject_fault("patch", kind, retry_after=RETRY_AFTER if kind == "429" else None)
    moved_to = slot.starts_at + timedelta(days=1, hours=2)
    slots.move_slot(slot, moved_to)
    db.session.commit()
    google_driver.pump()  # the move job, refused
    patches = google.calls(f"{EVENTS}/{meeting.external_id}", "PATCH")
    assert [c["status"] for c in patches] == [429 if kind == "429" else 500]
    google_driver.travel_to(clock.now() + timedelta(minutes=15))  # past RQ's first back-off and the Retry-After
    google_driver.pump()
    patches = google.calls(f"{EVENTS}/{meeting.external_id}", "PATCH")
    [event] = live_events(google)
    figures(f"google patch {kind}-once", patches="/".join(str(c["status"]) for c in patches),
            start=event["start"]["dateTime"], end=event["end"]["dateTime"])
    assert [c["status"] for c in patches] == [patches[0]["status"], 200]
    assert datetime.fromisoformat(event["start"]["dateTime"]) == moved_to
    assert datetime.fromisoformat(event["end"]["dateTime"]) == moved_to + timedelta(minutes=60)
    assert join_url_of(event) == meeting.join_url  # the guests' link stays
    if kind == "429":
        [retry] = [at for function, at in google_driver.released if function == "app.jobs.move_meeting"]
        assert RETRY_AFTER - 1 <= retry - stamp(patches[0]) <= RETRY_AFTER + 1
