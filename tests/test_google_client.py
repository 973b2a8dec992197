"""The Google client and the Google Meet provider against the Google emulator: every call under every
fault, once and persistent, classified into the meetings wing's errors; the insert's shape checked
against Google's discovery document; conferences that are pending, failed or deleted by the host."""
from datetime import timedelta
import re
import uuid
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.extensions import db
from app.google import link
from app.google.client import QUOTA_RETRY_AFTER, event_id
from app.google.provider import tool
from app.meetings.provider import (MeetingGone, MeetingSpec, ProviderAuthError, ProviderRefused, ProviderRetryable)
from app.models import GoogleConnection, LinkStatus

EMAIL = "free@gmail.test"
#: What a classified error may say: the call, and a status with Google's short reason code, or a transport word.
SHORT_MESSAGE = re.compile(r"[a-z. ]+: (HTTP \d{3}( [A-Za-z_]{1,40})?( without an? [a-z ]+)?|timeout|[A-Za-z]+)")


def spec_for(slot_id=1, **changes) -> MeetingSpec:
    starts = clock.now().replace(microsecond=0) + timedelta(days=2)
    values = dict(slot_id=slot_id, title="英会話レッスン", starts_at=starts, ends_at=starts + timedelta(hours=1),
                  duration_minutes=60, timezone="Asia/Tokyo", issue_key=uuid.uuid4().hex)
    values.update(changes)
    return MeetingSpec(**values)


@pytest.fixture
def linked(app, link_google, make_host, google, monkeypatch):
    """A host linked to free@gmail.test; the link's id. Google calls give up after 0.3 s here."""
    monkeypatch.setitem(app.config, "GOOGLE_HTTP_TIMEOUT", 0.3)
    google.configure(timeout_seconds=0.8)
    host = make_host()
    link_google(host, EMAIL)
    db.session.rollback()
    connection = db.session.query(GoogleConnection).filter_by(host_id=host.id).one()
    google.clear_calls()
    return connection.id


def refreshes(google) -> list[dict]:
    return [c for c in google.calls("/token") if (c["form"] or {}).get("grant_type") == "refresh_token"]


# --- the insert's shape ---------------------------------------------------------------------------

def test_insert_sends_our_id_no_attendees_no_updates_and_matches_the_discovery_document(linked, google):
    from devtools.google_emulator.contract import validate_request

    spec = spec_for()
    meeting = tool.create(linked, spec)
    [call] = google.calls("/calendar/v3/calendars/primary/events", method="POST")
    assert call["query"] == {"conferenceDataVersion": "1", "sendUpdates": "none"}
    body = call["json"]
    assert "attendees" not in body and body["id"] == event_id(spec) == meeting.external_id
    assert body["start"] == {"dateTime": spec.starts_at.astimezone(ZoneInfo("Asia/Tokyo")).isoformat(),
                             "timeZone": "Asia/Tokyo"}
    assert body["conferenceData"]["createRequest"]["conferenceSolutionKey"] == {"type": "hangoutsMeet"}
    validate_request("calendar.events.insert", {"calendarId": "primary", **call["query"]}, body)
    [event] = google.events(EMAIL)
    assert meeting.join_url == event["conferenceData"]["entryPoints"][0]["uri"]
    assert meeting.join_url.startswith("https://meet.google.com/") and meeting.host_url == event["htmlLink"]
    assert event["sendUpdates"] == ["none"] and "attendees" not in event


def test_a_repeated_insert_is_a_409_duplicate_and_reuses_the_event(linked, google):
    spec = spec_for()
    first = tool.create(linked, spec)
    again = tool.create(linked, spec)  # a retry of an insert whose answer was lost
    assert again == first and len(google.events(EMAIL)) == 1
    assert [c["status"] for c in google.calls("/calendar/v3", method="POST")] == [200, 409]


def test_patch_moves_the_event_keeps_the_meet_link_and_every_call_matches_the_contract(linked, google):
    spec = spec_for()
    meeting = tool.create(linked, spec)
    moved = spec_for(issue_key=spec.issue_key, starts_at=spec.starts_at + timedelta(hours=3),
                     ends_at=spec.ends_at + timedelta(hours=3))
    tool.update(linked, meeting.external_id, moved)
    [patch] = google.calls("/calendar/v3", method="PATCH")
    assert set(patch["json"]) == {"start", "end"} and patch["query"]["sendUpdates"] == "none"
    assert tool.get(linked, meeting.external_id).join_url == meeting.join_url
    assert tool.start_link(linked, meeting.external_id) == meeting.join_url
    tool.delete(linked, meeting.external_id)
    from devtools.google_emulator.contract import validate_call

    assert {validate_call(call) for call in google.calls("/calendar/v3")} == {
        "calendar.events.insert", "calendar.events.get", "calendar.events.patch", "calendar.events.delete"}


# --- conferences ------------------------------------------------------------------------------------

def test_a_pending_conference_is_polled_until_it_has_a_link(linked, google):
    google.set_conference_pending(2)
    meeting = tool.create(linked, spec_for())
    assert meeting.join_url.startswith("https://meet.google.com/")
    assert len(google.calls("/calendar/v3", method="GET")) == 3


def test_a_conference_pending_too_long_is_retried_later_and_found_then(linked, google):
    google.set_conference_pending(4)  # pending on insert and the next four gets: longer than create waits
    spec = spec_for()
    with pytest.raises(ProviderRetryable) as caught:
        tool.create(linked, spec)
    assert caught.value.retry_after and caught.value.code == "pending" and len(google.events(EMAIL)) == 1
    found = tool.find(linked, spec)  # the wing's next attempt finds the event, by then with its link
    assert found is not None and found.join_url and len(google.events(EMAIL)) == 1


def test_a_failed_conference_is_asked_for_once_more_then_left_for_a_retry(linked, google):
    google.set_conference_failure(True)
    spec = spec_for()
    with pytest.raises(ProviderRetryable) as caught:
        tool.create(linked, spec)
    assert caught.value.code == "failure"
    [patch] = google.calls("/calendar/v3", method="PATCH")
    first_request = google.calls("/calendar/v3", method="POST")[0]["json"]["conferenceData"]["createRequest"]
    assert patch["json"]["conferenceData"]["createRequest"]["requestId"] != first_request["requestId"]
    google.set_conference_failure(False)
    meeting = tool.create(linked, spec)  # the wing's retry: 409 → the same event, asked once more
    assert meeting.join_url and len(google.events(EMAIL)) == 1


def test_an_event_deleted_in_google_calendar_is_gone(linked, google):
    spec = spec_for()
    meeting = tool.create(linked, spec)
    google.cancel_event_out_of_band(EMAIL, meeting.external_id)
    with pytest.raises(MeetingGone):
        tool.get(linked, meeting.external_id)
    with pytest.raises(MeetingGone):
        tool.start_link(linked, meeting.external_id)
    assert tool.find(linked, spec) is None
    tool.delete(linked, meeting.external_id)  # 410 deleted: done
    assert tool.find(linked, spec_for()) is None  # never created: 404


def test_delete_twice_is_done_both_times(linked, google):
    meeting = tool.create(linked, spec_for())
    tool.delete(linked, meeting.external_id)
    tool.delete(linked, meeting.external_id)
    assert [c["status"] for c in google.calls("/calendar/v3", method="DELETE")] == [204, 410]
    assert google.events(EMAIL)[0]["status"] == "cancelled"


# --- every call under every fault -----------------------------------------------------------------

CALENDAR_OPERATIONS = ("insert", "get", "patch", "delete")
KINDS = ("401", "403_rate", "403_user_rate", "403_quota", "429", "429_retry_after", "404", "410", "500", "503",
         "timeout", "html", "html_200", "empty", "bad_json")


def calendar_call(operation, link_id, existing):
    """Run one Calendar operation through the client (``existing``: an event made before the fault)."""
    api = link.api_for(link_id)
    if operation == "insert":
        return api.insert_event(spec_for(slot_id=2))
    if operation == "get":
        return api.get_event(existing.external_id)
    if operation == "patch":
        return api.patch_event(existing.external_id, {"summary": "変更"})
    return api.delete_event(existing.external_id)


def inject(google, operation, kind, times):
    if kind == "429_retry_after":
        google.inject_fault(operation, "429", times, retry_after=7)
    elif kind == "html_200":
        google.inject_fault(operation, "html", times, status=200)
    else:
        google.inject_fault(operation, kind, times)


def expected_calendar_error(operation, kind):
    """The classified error (class, retry_after check, answered) for a Calendar call; None = it succeeds."""
    if kind == "401":
        return ProviderAuthError, None, True
    if kind in ("404", "410"):
        return (None if operation == "delete" else MeetingGone), None, True
    if kind == "403_quota":
        return ProviderRetryable, lambda s: s >= QUOTA_RETRY_AFTER, True
    if kind == "429_retry_after":
        return ProviderRetryable, lambda s: s == 7, True
    if kind == "timeout":
        return ProviderRetryable, lambda s: s is None, False
    return ProviderRetryable, lambda s: s is None, True


def assert_classified(exc, cls, retry_check, answered):
    assert type(exc) is cls, repr(exc)
    assert SHORT_MESSAGE.fullmatch(str(exc)), str(exc)  # no body, no HTML, no token: a short code
    if cls is ProviderRetryable:
        assert retry_check(exc.retry_after), exc.retry_after
        assert exc.answered is answered


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", CALENDAR_OPERATIONS)
def test_calendar_call_under_fault(linked, google, operation, kind, persistent):
    existing = tool.create(linked, spec_for())
    google.clear_calls()
    inject(google, operation, kind, None if persistent else 1)
    cls, retry_check, answered = expected_calendar_error(operation, kind)
    if kind == "401" and not persistent:
        calendar_call(operation, linked, existing)  # refreshed once, retried once
        assert len(refreshes(google)) == 1
        assert [c["status"] for c in google.calls("/calendar") if c["operation"] == operation][0] == 401
        return
    if cls is None:
        assert calendar_call(operation, linked, existing) is None  # delete: gone counts as deleted
    else:
        with pytest.raises(cls) as caught:
            calendar_call(operation, linked, existing)
        assert_classified(caught.value, cls, retry_check, answered)
    if kind == "401":  # refreshed once, retried once, then given up; the link itself is not declared broken
        assert len(refreshes(google)) == 1
        assert len([c for c in google.calls("/calendar") if c["operation"] == operation]) == 2
        assert db.session.get(GoogleConnection, linked).status == LinkStatus.ACTIVE
    google.clear_faults()
    calendar_call(operation, linked, existing)  # the next call goes through


def test_a_grant_without_the_calendar_scope_fails_the_check_and_asks_for_a_relink(app, link_google, make_host,
                                                                                   google, run_jobs, smtp):
    host = make_host()
    link_google(host, EMAIL)
    connection = db.session.query(GoogleConnection).filter_by(host_id=host.id).one()
    # The grant lost the calendar permission (a read-only scope stands in for the unticked one).
    connection.scope = "openid"
    db.session.commit()
    with pytest.raises(ProviderAuthError):
        tool.check_link(connection.id)
    db.session.rollback()
    assert db.session.get(GoogleConnection, connection.id).status == LinkStatus.NEEDS_RELINK
    assert db.session.get(GoogleConnection, connection.id).broken_reason == "scope_missing"
    run_jobs()
    [alert] = smtp.wait_for(1)
    assert alert["Subject"] == "【要対応】Google Meet連携の再設定をお願いします"


TOKEN_EXPECTED = {
    "401": (ProviderAuthError, None, True),
    "403_rate": (ProviderRetryable, lambda s: s is None, True),
    "403_user_rate": (ProviderRetryable, lambda s: s is None, True),
    "403_quota": (ProviderRetryable, lambda s: s >= QUOTA_RETRY_AFTER, True),
    "429": (ProviderRetryable, lambda s: s is None, True),
    "429_retry_after": (ProviderRetryable, lambda s: s == 7, True),
    "404": (ProviderRefused, None, True),
    "410": (ProviderAuthError, None, True),  # the emulator's 410 says invalid_grant
    "500": (ProviderRetryable, lambda s: s is None, True),
    "503": (ProviderRetryable, lambda s: s is None, True),
    "timeout": (ProviderRetryable, lambda s: s is None, False),
    "html": (ProviderRetryable, lambda s: s is None, True),
    "html_200": (ProviderRetryable, lambda s: s is None, True),
    "empty": (ProviderRetryable, lambda s: s is None, True),
    "bad_json": (ProviderRetryable, lambda s: s is None, True),
}


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", KINDS)
def test_token_refresh_under_fault(linked, google, kind, persistent):
    inject(google, "token", kind, None if persistent else 1)
    cls, retry_check, answered = TOKEN_EXPECTED[kind]
    with pytest.raises(cls) as caught:
        link.access_token(linked, force_refresh=True)
    assert_classified(caught.value, cls, retry_check, answered)
    db.session.rollback()
    status = db.session.get(GoogleConnection, linked).status
    # Only invalid_grant is the host's dead grant; invalid_client (401) is our configuration.
    assert status == (LinkStatus.NEEDS_RELINK if kind == "410" else LinkStatus.ACTIVE)
    google.clear_faults()
    if kind != "410":
        assert link.access_token(linked, force_refresh=True)


REVOKE_EXPECTED = {
    **TOKEN_EXPECTED,
    "410": (None, None, True),  # invalid_grant: the token is dead already, which counts as revoked
    "html_200": (None, None, True),  # a 200 is Google's whole answer to a revoke (its body is empty)
    "empty": (None, None, True),
    "bad_json": (None, None, True),
}


@pytest.mark.parametrize("persistent", [False, True], ids=["once", "persistent"])
@pytest.mark.parametrize("kind", KINDS)
def test_revoke_under_fault(linked, google, kind, persistent):
    inject(google, "revoke", kind, None if persistent else 1)
    cls, retry_check, answered = REVOKE_EXPECTED[kind]
    connection = db.session.get(GoogleConnection, linked)
    if cls is None:
        link.revoke(connection)
        return
    with pytest.raises(cls) as caught:
        link.revoke(connection)
    assert_classified(caught.value, cls, retry_check, answered)
    google.clear_faults()
    link.revoke(connection)
    assert all(grant["revoked"] for grant in google.grants(EMAIL))
    link.revoke(connection)  # a dead token: already revoked
