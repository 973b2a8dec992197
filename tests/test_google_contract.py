"""The Google emulator answers, and the contract checks judge, by Google's own calendar.v3.json.

The discovery document comes with google-api-python-client (requirements-dev.txt). Without it these
tests skip, except under CI, where a missing document fails the run instead of passing unchecked.
Like test_google_emulator.py they need neither the product's ``app`` nor its database.
"""
import os

import pytest
import requests

from devtools.google_emulator import contract
from devtools.google_emulator.identity import pkce_s256

REDIRECT = "http://127.0.0.1:5000/google/callback"
VERIFIER = "k" * 50
FREE, TEACHER = "free@gmail.test", "teacher@school.test"


def under_ci() -> bool:
    """``CI=true`` (.ci/run sets it; so do the usual CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


pytestmark = pytest.mark.skipif(contract.document_path() is None and not under_ci(), reason=contract.SKIP_REASON)


@pytest.fixture(autouse=True)
def discovery_document():
    if contract.document_path() is None:
        pytest.fail(contract.SKIP_REASON + ": under CI the contract checks must run", pytrace=False)


def access_token(google, email=FREE):
    code = google.authorize_code_for(email, redirect_uri=REDIRECT, state="s", code_challenge=pkce_s256(VERIFIER))
    return requests.post(google.token_url, timeout=5, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER,
        "client_id": google.client_id, "client_secret": google.client_secret}).json()["access_token"]


def lesson(event_id="lesson00001", **extra):
    """A request body as facts §3 shows it: own id, local times with a timeZone, a Meet createRequest."""
    return {"id": event_id, "summary": "Piano lesson", "description": "Bring your score.",
            "start": {"dateTime": "2031-07-01T10:00:00", "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": "2031-07-01T11:00:00", "timeZone": "Asia/Tokyo"},
            "conferenceData": {"createRequest": {"requestId": "9f0c6b1e-req",
                                                 "conferenceSolutionKey": {"type": "hangoutsMeet"}}}, **extra}


class Calendar:
    """Calls the emulator's Calendar API and checks each request and answer against the document."""

    def __init__(self, google, token):
        self.google, self.token = google, token

    def call(self, method_id, http_method, path, *, params=None, body=None, status=200):
        params = params or {}
        contract.validate_request(method_id, {**contract.method_for(http_method, "/calendar/v3" + path)[1],
                                              **params}, body)
        response = requests.request(http_method, self.google.calendar_url + path, params=params, json=body,
                                    headers={"Authorization": f"Bearer {self.token}"}, timeout=5)
        assert response.status_code == status, response.text
        answer = response.json() if response.content else None
        if status < 300:
            contract.validate_response(method_id, answer)
        else:
            contract.validate_error(answer)
        return answer

    def insert(self, body, status=200):
        return self.call("calendar.events.insert", "POST", "/calendars/primary/events",
                         params={"conferenceDataVersion": 1, "sendUpdates": "none"}, body=body, status=status)

    def get(self, event_id="lesson00001", **kwargs):
        return self.call("calendar.events.get", "GET", f"/calendars/primary/events/{event_id}", **kwargs)

    def patch(self, body, event_id="lesson00001"):
        return self.call("calendar.events.patch", "PATCH", f"/calendars/primary/events/{event_id}",
                         params={"conferenceDataVersion": 1, "sendUpdates": "none"}, body=body)

    def delete(self, event_id="lesson00001", status=204):
        return self.call("calendar.events.delete", "DELETE", f"/calendars/primary/events/{event_id}",
                         params={"sendUpdates": "none"}, status=status)


@pytest.fixture
def calendar(google):
    return Calendar(google, access_token(google))


def test_every_event_answer_matches_the_event_schema(google, calendar):
    created = calendar.insert(lesson(reminders={"useDefault": False, "overrides": [{"method": "popup",
                                                                                    "minutes": 10}]}))
    assert created["reminders"]["overrides"][0]["minutes"] == 10
    calendar.get()
    calendar.patch({"start": {"dateTime": "2031-07-02T10:00:00+09:00"},
                    "end": {"dateTime": "2031-07-02T11:00:00+09:00"}})
    assert calendar.delete() is None
    assert calendar.get()["status"] == "cancelled"
    calendar.delete(status=410)
    calendar.get("nothing00", status=404)
    calendar.insert(lesson(), status=409)


def test_pending_failed_and_plain_events_match_the_event_schema(google, calendar):
    google.set_conference_pending(1)
    assert calendar.insert(lesson("pending001"))["conferenceData"]["createRequest"]["status"]["statusCode"] == \
        "pending"
    calendar.get("pending001")
    assert "hangoutLink" in calendar.get("pending001")
    google.set_conference_pending(0)
    google.set_conference_failure(True)
    calendar.insert(lesson("failed0001"))
    calendar.insert({key: value for key, value in lesson("plain00001").items() if key != "conferenceData"})


def test_workspace_event_with_phone_entry_points_matches(google):
    calendar = Calendar(google, access_token(google, TEACHER))
    points = calendar.insert(lesson())["conferenceData"]["entryPoints"]
    assert {point["entryPointType"] for point in points} == {"video", "phone", "more"}


def test_every_recorded_client_request_passes_validate_call(google, calendar):
    calendar.insert(lesson())
    calendar.get()
    calendar.delete()
    calls = google.calls("/calendar/v3/")
    assert [contract.validate_call(call) for call in calls] == [
        "calendar.events.insert", "calendar.events.get", "calendar.events.delete"]


def test_converter_keeps_refs_and_method_required_fields():
    insert = contract.json_schema("Event", "calendar.events.insert")
    assert insert["$ref"] == "#/definitions/Event"
    event = insert["definitions"]["Event"]
    assert set(event["required"]) == {"start", "end"}
    assert event["properties"]["start"] == {"$ref": "#/definitions/EventDateTime"}
    assert event["properties"]["attendees"]["items"] == {"$ref": "#/definitions/EventAttendee"}
    assert event["additionalProperties"] is False
    assert "required" not in contract.json_schema("Event", "calendar.events.patch")["definitions"]["Event"]
    assert contract.json_schema("Event")["definitions"]["EventDateTime"]["properties"]["dateTime"]["format"] == \
        "date-time"


@pytest.mark.parametrize(("params", "body", "problem"), [
    ({"sendUpdates": "everyone"}, lesson(), "sendUpdates"),
    ({"conferenceDataVersion": 2}, lesson(), "conferenceDataVersion"),
    ({"sendNotification": "false"}, lesson(), "not a parameter"),
    ({}, {key: value for key, value in lesson().items() if key != "end"}, "'end' is a required property"),
    ({}, lesson(attendee=[]), "'attendee' was unexpected"),
    ({}, lesson(hangoutLink="https://meet.google.com/abc-defg-hij"), "read-only"),
    ({}, lesson(start={"dateTime": "2031-07-01T10:00:00"}), "no offset and no timeZone"),
    ({}, lesson(start={"dateTime": "July 1st", "timeZone": "Asia/Tokyo"}), "date-time"),
    ({}, lesson(summary=42), "is not of type 'string'"),
])
def test_validate_request_catches_what_google_would_refuse(params, body, problem):
    with pytest.raises(contract.ContractError, match=problem):
        contract.validate_request("calendar.events.insert", {"calendarId": "primary", **params}, body)


def test_validate_request_needs_path_parameters_and_refuses_a_body_where_none_is_taken():
    with pytest.raises(contract.ContractError, match="eventId: required"):
        contract.validate_request("calendar.events.get", {"calendarId": "primary"})
    with pytest.raises(contract.ContractError, match="takes no body"):
        contract.validate_request("calendar.events.delete", {"calendarId": "primary", "eventId": "abcde"}, {})
    contract.validate_request("calendar.events.patch", {"calendarId": "primary", "eventId": "abcde",
                                                        "conferenceDataVersion": "1"}, {"summary": "Moved"})


def test_validate_response_refuses_unknown_fields_and_local_times():
    with pytest.raises(contract.ContractError, match="'meetLink' was unexpected"):
        contract.validate_response("calendar.events.get", {"kind": "calendar#event", "meetLink": "x"})
    with pytest.raises(contract.ContractError, match="offset"):
        contract.validate_response("calendar.events.get", {"start": {"dateTime": "2031-07-01T10:00:00",
                                                                     "timeZone": "Asia/Tokyo"}})
    with pytest.raises(contract.ContractError):
        contract.validate_error({"error": "invalid_grant"})
