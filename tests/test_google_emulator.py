"""The Google emulator keeps the platform facts (shared/reference/google-meet-facts.md) the product relies on.

These tests talk HTTP to the emulator only: they need neither the product's ``app`` nor its database.
"""
import base64
import json
import time

import pytest
import requests

from devtools.google_emulator.contract import validate_error
from devtools.google_emulator.identity import pkce_s256

REDIRECT = "http://127.0.0.1:5000/google/callback"
OWNED = "https://www.googleapis.com/auth/calendar.events.owned"
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
SCOPE = f"openid email {OWNED}"
VERIFIER = "v" * 43 + "-._~abc"
FREE, TEACHER = "free@gmail.test", "teacher@school.test"


def exchange(google, code, *, verifier=VERIFIER, redirect_uri=REDIRECT, basic=False):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    if basic:
        return requests.post(google.token_url, data=data, auth=(google.client_id, google.client_secret), timeout=5)
    data.update(client_id=google.client_id, client_secret=google.client_secret)
    return requests.post(google.token_url, data=data, timeout=5)


def refresh(google, refresh_token):
    return requests.post(google.token_url, timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": google.client_id, "client_secret": google.client_secret})


def consent(google, email=FREE, **kwargs):
    kwargs.setdefault("scope", SCOPE)
    return google.authorize_code_for(email, redirect_uri=REDIRECT, state="st", code_challenge=pkce_s256(VERIFIER),
                                     **kwargs)


def tokens_for(google, email=FREE, **kwargs):
    response = exchange(google, consent(google, email, **kwargs))
    assert response.status_code == 200, response.text
    return response.json()


def claims(id_token):
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def api(google, method, path, token, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, google.calendar_url + path, headers=headers, timeout=5, **kwargs)


def event_body(event_id="lesson00001", meet=True, **extra):
    body = {"id": event_id, "summary": "Piano lesson",
            "start": {"dateTime": "2031-07-01T10:00:00", "timeZone": "Asia/Tokyo"},
            "end": {"dateTime": "2031-07-01T11:00:00", "timeZone": "Asia/Tokyo"}, **extra}
    if meet:
        body["conferenceData"] = {"createRequest": {"requestId": "req-" + event_id,
                                                    "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    return body


def insert(google, token, body=None, version=1):
    return api(google, "POST", "/calendars/primary/events", token, json=body or event_body(),
               params={"conferenceDataVersion": version, "sendUpdates": "none"})


@pytest.fixture
def token(google):
    return tokens_for(google)["access_token"]


# -- OAuth ----------------------------------------------------------------------------------------


def test_consent_page_lists_both_test_users_and_lets_the_calendar_scope_be_unticked(google):
    response = requests.get(google.authorize_url, timeout=5, params={
        "client_id": google.client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPE,
        "state": "st", "code_challenge": pkce_s256(VERIFIER), "code_challenge_method": "S256",
        "access_type": "offline", "prompt": "consent"})
    assert response.status_code == 200
    assert FREE in response.text and TEACHER in response.text
    assert f'name="granted" value="{OWNED}" checked' in response.text
    form = {"client_id": google.client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPE,
            "state": "st", "code_challenge": pkce_s256(VERIFIER), "code_challenge_method": "S256",
            "access_type": "offline", "prompt": "consent", "user": FREE}  # calendar box unticked
    answer = requests.post(google.authorize_url, data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302 and "state=st" in answer.headers["Location"]
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    granted = exchange(google, requests.utils.unquote(code)).json()
    assert granted["scope"] == f"openid {EMAIL_SCOPE}"


@pytest.mark.parametrize(("change", "error"), [
    ({"client_id": "someone-else"}, "invalid_client"),
    ({"redirect_uri": "https://evil.example/cb"}, "redirect_uri_mismatch"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid https://www.googleapis.com/auth/everything"}, "invalid_scope"),
    ({"code_challenge_method": "S512"}, "invalid_request"),
    ({"access_type": "forever"}, "invalid_request"),
])
def test_authorize_errors_are_named_as_google_names_them(google, change, error):
    params = {"client_id": google.client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPE,
              "state": "st", "code_challenge": pkce_s256(VERIFIER), "code_challenge_method": "S256", **change}
    response = requests.get(google.authorize_url, params=params, timeout=5)
    assert response.status_code in (400, 401)
    assert f"Error {response.status_code}: {error}" in response.text


def test_code_exchange_with_pkce_gives_tokens_and_an_id_token(google):
    tokens = exchange(google, consent(google), basic=True).json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3599
    assert tokens["scope"].split() == ["openid", EMAIL_SCOPE, OWNED]
    assert tokens["refresh_token"]
    free = claims(tokens["id_token"])
    assert free["iss"] == "https://accounts.google.com" and free["aud"] == google.client_id
    assert free["email"] == FREE and free["email_verified"] is True and "hd" not in free
    assert free["exp"] > free["iat"]
    again = claims(tokens_for(google, FREE)["id_token"])
    assert again["sub"] == free["sub"]  # stable per user
    teacher = claims(tokens_for(google, TEACHER)["id_token"])
    assert teacher["hd"] == "school.test" and teacher["sub"] != free["sub"]


def test_no_id_token_without_openid(google):
    assert "id_token" not in tokens_for(google, scope=OWNED)


def test_wrong_or_missing_verifier_and_reused_code_are_invalid_grant(google):
    code = consent(google)
    wrong = exchange(google, code, verifier="w" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange(google, code, verifier=None).json()["error"] == "invalid_grant"
    assert exchange(google, code).status_code == 200
    reused = exchange(google, code)
    assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_code_with_another_redirect_uri_or_past_ten_minutes_is_invalid_grant(google):
    assert exchange(google, consent(google), redirect_uri=REDIRECT + "/").json()["error"] == "invalid_grant"
    code = consent(google)
    google.advance_clock(601)
    assert exchange(google, code).json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_bad_client_is_401_invalid_client(google):
    response = requests.post(google.token_url, timeout=5, data={
        "grant_type": "authorization_code", "code": consent(google), "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER, "client_id": google.client_id, "client_secret": "wrong"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_refresh_token_only_offline_and_first_consent_or_prompt_consent(google):
    assert "refresh_token" in tokens_for(google, access_type="offline", prompt="")  # first consent
    assert "refresh_token" not in tokens_for(google, access_type="offline", prompt="")  # already consented
    assert "refresh_token" not in tokens_for(google, access_type="online", prompt="consent")
    assert "refresh_token" in tokens_for(google, access_type="offline", prompt="consent")
    assert [grant["has_refresh_token"] for grant in google.grants(FREE)] == [True, False, False, True]
    # the classic trap: a first consent without offline access leaves no refresh token to come later
    assert "refresh_token" not in tokens_for(google, TEACHER, access_type="online", prompt="")
    assert "refresh_token" not in tokens_for(google, TEACHER, access_type="offline", prompt="")


def test_refresh_gives_a_new_access_token_and_no_new_refresh_token(google):
    first = tokens_for(google)
    refreshed = refresh(google, first["refresh_token"])
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}  # no rotation
    assert body["access_token"] != first["access_token"] and body["scope"] == first["scope"]
    assert refresh(google, first["refresh_token"]).status_code == 200  # still the same refresh token


def test_revoking_the_access_token_kills_the_refresh_token_and_vice_versa(google):
    first = tokens_for(google)
    assert requests.post(google.revoke_url, params={"token": first["access_token"]}, timeout=5).status_code == 200
    assert refresh(google, first["refresh_token"]).json() == {
        "error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    second = tokens_for(google)
    assert requests.post(google.revoke_url, data={"token": second["refresh_token"]}, timeout=5).status_code == 200
    assert api(google, "GET", "/calendars/primary/events/nothing00", second["access_token"]).status_code == 401
    unknown = requests.post(google.revoke_url, params={"token": "nope"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_token"


def test_user_removing_access_revokes_every_token_and_the_next_consent_is_first_again(google):
    first = tokens_for(google, prompt="")
    assert google.revoke_grants(FREE) == 1
    assert refresh(google, first["refresh_token"]).status_code == 400
    assert api(google, "GET", "/calendars/primary/events/nothing00", first["access_token"]).status_code == 401
    assert "refresh_token" in tokens_for(google, prompt="")


def test_expired_access_token_is_401_auth_error(google):
    google.set_access_token_ttl(1)
    tokens = tokens_for(google)
    assert tokens["expires_in"] == 1
    google.advance_clock(2)
    response = api(google, "GET", "/calendars/primary/events/nothing00", tokens["access_token"])
    assert response.status_code == 401 and response.json()["error"]["errors"][0]["reason"] == "authError"
    assert refresh(google, tokens["refresh_token"]).status_code == 200


def test_call_log_never_holds_tokens_or_secrets(google):
    tokens = tokens_for(google)
    refresh(google, tokens["refresh_token"])
    insert(google, tokens["access_token"])
    logged = json.dumps(google.calls())
    for secret in (tokens["access_token"], tokens["refresh_token"], google.client_secret, VERIFIER):
        assert secret not in logged
    assert [call["operation"] for call in google.calls()] == ["token", "token", "insert"]


# -- events ---------------------------------------------------------------------------------------


def test_insert_creates_a_meet_link_and_records_no_attendees(google, token):
    response = insert(google, token)
    assert response.status_code == 200
    event = response.json()
    assert event["id"] == "lesson00001" and event["status"] == "confirmed" and event["kind"] == "calendar#event"
    assert event["start"] == {"dateTime": "2031-07-01T10:00:00+09:00", "timeZone": "Asia/Tokyo"}
    data = event["conferenceData"]
    assert data["createRequest"]["status"]["statusCode"] == "success"
    video = next(point for point in data["entryPoints"] if point["entryPointType"] == "video")
    assert event["hangoutLink"] == video["uri"] == f"https://meet.google.com/{data['conferenceId']}"
    assert data["conferenceSolution"]["name"] == "Google Meet"
    stored, = google.events(FREE)
    assert "attendees" not in stored and stored["sendUpdates"] == ["none"]


def test_workspace_conference_has_a_phone_entry_point(google):
    token = tokens_for(google, TEACHER)["access_token"]
    types = [point["entryPointType"] for point in insert(google, token).json()["conferenceData"]["entryPoints"]]
    assert types[0] == "video" and "phone" in types


def test_conference_data_version_0_ignores_the_create_request(google, token):
    event = insert(google, token, version=0).json()
    assert "conferenceData" not in event and "hangoutLink" not in event


def test_repeated_event_id_is_409_duplicate(google, token):
    insert(google, token)
    response = insert(google, token)
    assert response.status_code == 409 and response.json()["error"]["errors"][0]["reason"] == "duplicate"
    validate_error(response.json())


@pytest.mark.parametrize("event_id", ["abc", "UPPERCASE1", "with-dash1", "wxyz12345"])
def test_event_id_must_be_base32hex_of_5_or_more(google, token, event_id):
    response = insert(google, token, event_body(event_id))
    assert response.status_code == 400 and response.json()["error"]["errors"][0]["reason"] == "invalid"


def test_missing_time_zone_is_400(google, token):
    body = event_body(start={"dateTime": "2031-07-01T10:00:00"})
    assert insert(google, token, body).status_code == 400


def test_pending_conference_turns_success_after_n_gets(google, token):
    google.set_conference_pending(2)
    created = insert(google, token).json()
    assert created["conferenceData"]["createRequest"]["status"]["statusCode"] == "pending"
    assert "entryPoints" not in created["conferenceData"] and "hangoutLink" not in created
    statuses = [api(google, "GET", "/calendars/primary/events/lesson00001", token).json()
                ["conferenceData"]["createRequest"]["status"]["statusCode"] for _ in range(3)]
    assert statuses == ["pending", "pending", "success"]
    final = api(google, "GET", "/calendars/primary/events/lesson00001", token).json()
    assert final["hangoutLink"].startswith("https://meet.google.com/")


def test_failed_conference_has_no_entry_points(google, token):
    google.set_conference_failure(True)
    event = insert(google, token).json()
    assert event["conferenceData"]["createRequest"]["status"]["statusCode"] == "failure"
    assert "entryPoints" not in event["conferenceData"] and "hangoutLink" not in event


def test_patch_moves_the_event_and_keeps_the_link(google, token):
    created = insert(google, token).json()
    response = api(google, "PATCH", "/calendars/primary/events/lesson00001", token,
                   params={"conferenceDataVersion": 1, "sendUpdates": "none"},
                   json={"start": {"dateTime": "2031-07-02T10:00:00+09:00"},
                         "end": {"dateTime": "2031-07-02T11:00:00+09:00"}, "summary": "Moved"})
    assert response.status_code == 200
    moved = response.json()
    assert moved["hangoutLink"] == created["hangoutLink"] and moved["summary"] == "Moved"
    assert moved["start"]["dateTime"] == "2031-07-02T10:00:00+09:00" and moved["sequence"] == 1
    assert moved["etag"] != created["etag"] and moved["id"] == created["id"]


def test_delete_then_get_is_cancelled_then_delete_again_is_410(google, token):
    insert(google, token)
    path = "/calendars/primary/events/lesson00001"
    deleted = api(google, "DELETE", path, token)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api(google, "GET", path, token).json()["status"] == "cancelled"
    again = api(google, "DELETE", path, token)
    assert again.status_code == 410 and again.json()["error"]["errors"][0]["reason"] == "deleted"
    validate_error(again.json())


def test_unknown_event_or_calendar_is_404_not_found(google, token):
    for method in ("GET", "PATCH", "DELETE"):
        response = api(google, method, "/calendars/primary/events/nothing00", token, json={})
        assert response.status_code == 404 and response.json()["error"]["errors"][0]["reason"] == "notFound"
    insert(google, token)
    assert api(google, "GET", "/calendars/other@gmail.test/events/lesson00001", token).status_code == 404
    assert api(google, "GET", f"/calendars/{FREE}/events/lesson00001", token).status_code == 200


def test_event_deleted_by_the_host_out_of_band_reads_cancelled(google, token):
    insert(google, token)
    google.cancel_event_out_of_band(FREE, "lesson00001")
    assert api(google, "GET", "/calendars/primary/events/lesson00001", token).json()["status"] == "cancelled"
    assert api(google, "DELETE", "/calendars/primary/events/lesson00001", token).status_code == 410


def test_no_token_is_401_auth_error(google):
    response = api(google, "POST", "/calendars/primary/events", None, json=event_body())
    assert response.status_code == 401 and response.json()["error"]["errors"][0]["reason"] == "authError"
    validate_error(response.json())


def test_token_without_calendar_scope_is_403_insufficient_permissions(google):
    token = tokens_for(google, granted_scopes=[])["access_token"]
    response = insert(google, token)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["errors"][0]["reason"] == "insufficientPermissions"
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


# -- faults ---------------------------------------------------------------------------------------

CALENDAR_FAULTS = [("401", 401, "authError"), ("403_rate", 403, "rateLimitExceeded"),
                   ("403_user_rate", 403, "userRateLimitExceeded"), ("403_quota", 403, "quotaExceeded"),
                   ("429", 429, "rateLimitExceeded"), ("404", 404, "notFound"), ("410", 410, "deleted"),
                   ("500", 500, "backendError"), ("503", 503, "backendError")]


@pytest.mark.parametrize(("kind", "status", "reason"), CALENDAR_FAULTS)
def test_each_calendar_fault_once_then_the_real_answer(google, token, kind, status, reason):
    google.inject_fault("insert", kind, retry_after=7 if kind == "429" else None)
    failed = insert(google, token)
    assert failed.status_code == status and failed.json()["error"]["errors"][0]["reason"] == reason
    validate_error(failed.json())
    if kind == "429":
        assert failed.headers["Retry-After"] == "7"
    assert google.events(FREE) == []  # the operation did not happen
    assert insert(google, token).status_code == 200


@pytest.mark.parametrize(("operation", "kind"), [("get", "500"), ("patch", "403_rate"), ("delete", "429")])
def test_persistent_fault_lasts_until_cleared(google, token, operation, kind):
    insert(google, token)
    google.inject_fault(operation, kind, times=None)
    method = {"get": "GET", "patch": "PATCH", "delete": "DELETE"}[operation]
    for _ in range(3):
        assert api(google, method, "/calendars/primary/events/lesson00001", token, json={}).status_code >= 400
    google.clear_faults()
    assert api(google, method, "/calendars/primary/events/lesson00001", token, json={}).status_code in (200, 204)


@pytest.mark.parametrize("kind", ["401", "500", "503", "429"])
def test_token_and_revoke_faults_answer_in_the_oauth_shape(google, kind):
    tokens = tokens_for(google)
    google.inject_fault("token", kind)
    failed = refresh(google, tokens["refresh_token"])
    assert failed.status_code == int(kind) and "error" in failed.json() and isinstance(failed.json()["error"], str)
    assert refresh(google, tokens["refresh_token"]).status_code == 200
    google.inject_fault("revoke", kind)
    assert requests.post(google.revoke_url, params={"token": tokens["access_token"]}, timeout=5).status_code == int(kind)


def test_broken_bodies(google, token):
    google.inject_fault("insert", "html")
    response = insert(google, token)
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")
    google.inject_fault("insert", "html", status=200)
    assert insert(google, token).status_code == 200
    google.inject_fault("get", "empty")
    empty = api(google, "GET", "/calendars/primary/events/lesson00001", token)
    assert empty.status_code == 200 and empty.content == b""
    google.inject_fault("get", "bad_json")
    broken = api(google, "GET", "/calendars/primary/events/lesson00001", token)
    with pytest.raises(ValueError):
        broken.json()
    assert google.events(FREE) == []


def test_timeout_sleeps_past_the_client_but_still_performs_the_operation(google, token):
    google.inject_fault("insert", "timeout", seconds=0.6)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.post(google.calendar_url + "/calendars/primary/events", params={"conferenceDataVersion": 1},
                      headers={"Authorization": f"Bearer {token}"}, json=event_body(), timeout=0.2)
    while not google.events(FREE) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.5
    stored, = google.events(FREE)
    assert stored["hangoutLink"].startswith("https://meet.google.com/")
    assert insert(google, token).status_code == 409  # a retry with the same id finds it


def test_fault_specs_are_checked(google):
    with pytest.raises(RuntimeError):
        google.inject_fault("list", "500")
    with pytest.raises(RuntimeError):
        google.inject_fault("insert", "418")
    assert google.faults() == []
