"""The one Google client: the token endpoint and the four Calendar calls we make, errors classified once.

Plain ``requests`` rather than google-api-python-client: four endpoints do not need a discovery
document at run time, and one place decides what every answer means (google-meet-facts §3–4).
Every call states its expected status; anything else becomes one of the meetings wing's errors
(``app.meetings.provider``):

- 401: the caller's token is refreshed once and the call retried once, then ``ProviderAuthError``;
- 403 ``insufficientPermissions``: ``ProviderAuthError`` (the grant lacks the calendar scope);
- 403 ``rateLimitExceeded``/``userRateLimitExceeded``, 429: ``ProviderRetryable`` (``Retry-After``
  honoured); 403 ``quotaExceeded`` (Google's abuse limit): ``ProviderRetryable`` after a longer wait;
- 5xx, timeouts, HTML/empty/non-JSON bodies, a 2xx body without the fields we need: ``ProviderRetryable``;
- 404, 410: ``MeetingGone``; any other 4xx: ``ProviderRefused``.

Messages carry only the status and Google's short reason code (``HTTP 403 quotaExceeded``), never
a body: they end up in staff logs and ``Meeting.error_detail``, and bodies can quote anything.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
import re
import uuid
from zoneinfo import ZoneInfo

import requests

from app import clock
from app.meetings.provider import (MeetingGone, MeetingSpec, ProviderAuthError, ProviderError, ProviderRefused,
                                   ProviderRetryable, http)

#: ``quotaExceeded`` is Google's abuse limit ("slow down", facts §4), not a per-minute window:
#: wait longer than a rate limit's backoff before asking again.
QUOTA_RETRY_AFTER = 15 * 60
#: Reasons of a 403 that mean "too fast, try later" (facts §4).
RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")
#: Google's reason codes are short camelCase words; anything else is not repeated in a message.
_CODE = re.compile(r"^[A-Za-z_]{1,40}$")


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint answered. Google does not rotate refresh tokens (facts §1), so
    ``refresh_token`` is "" when the answer had none and the stored one stays."""

    access_token: str
    expires_at: datetime
    refresh_token: str = ""
    scope: str = ""
    id_token: str = ""

    @classmethod
    def from_response(cls, data: dict) -> TokenSet:
        try:
            seconds = int(data.get("expires_in", 3599))
        except (TypeError, ValueError):
            seconds = 3599
        return cls(access_token=str(data["access_token"]), expires_at=clock.now() + timedelta(seconds=seconds),
                   refresh_token=str(data.get("refresh_token") or ""), scope=str(data.get("scope") or ""),
                   id_token=str(data.get("id_token") or ""))


@dataclass(frozen=True)
class Event:
    """A calendar event as far as a meeting needs it."""

    id: str
    #: ``confirmed``, ``tentative`` or ``cancelled`` (deleted in Google Calendar, facts §3).
    status: str
    #: The event's page in Google Calendar (where the host manages it).
    html_link: str
    #: The Meet link: the ``video`` entry point's ``uri``, else ``hangoutLink``; "" while none.
    join_url: str
    #: ``conferenceData.createRequest.status.statusCode``: ``pending``, ``success``, ``failure``, or "".
    conference_status: str
    has_conference: bool

    @classmethod
    def from_json(cls, data: dict) -> Event:
        conference = data.get("conferenceData") if isinstance(data.get("conferenceData"), dict) else {}
        entry_points = conference.get("entryPoints") if isinstance(conference.get("entryPoints"), list) else []
        video = next((e.get("uri", "") for e in entry_points
                      if isinstance(e, dict) and e.get("entryPointType") == "video"), "")
        request = conference.get("createRequest") if isinstance(conference.get("createRequest"), dict) else {}
        status = request.get("status").get("statusCode", "") if isinstance(request.get("status"), dict) else ""
        return cls(id=str(data["id"]), status=str(data.get("status") or "confirmed"),
                   html_link=str(data.get("htmlLink") or ""), join_url=str(video or data.get("hangoutLink") or ""),
                   conference_status=str(status), has_conference=bool(conference))

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def conference_pending(self) -> bool:
        """Google is still making the Meet conference (asynchronous, facts §3): ask again."""
        return not self.join_url and self.conference_status == "pending"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date; None when absent or odd."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = (moment - clock.now()).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf: not a delay
        return None
    return max(seconds, 0.0)


def _json(response: requests.Response) -> dict | None:
    """The body as a JSON object, or None (HTML, empty, truncated, a list …)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _reason(data: dict | None) -> str:
    """Google's reason code of an error body (``error.errors[0].reason``, or an OAuth ``error``)."""
    if not data:
        return ""
    error = data.get("error")
    reason = ""
    if isinstance(error, dict):
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = str(errors[0].get("reason") or "")
        reason = reason or str(error.get("status") or "")
    elif isinstance(error, str):
        reason = error
    return reason if _CODE.match(reason or "") else ""


def classify(response: requests.Response, what: str) -> ProviderError:
    """The wing's error for an answer that is not the expected one. ``what`` names the call (for staff)."""
    status = response.status_code
    data = _json(response)
    reason = _reason(data)
    message = f"{what}: HTTP {status}" + (f" {reason}" if reason else "")
    kwargs = {"status": status, "code": reason or None}
    if status == 429 or (status == 403 and reason in RATE_REASONS):
        return ProviderRetryable(message, retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                                 **kwargs)
    if status == 403 and reason == "quotaExceeded":
        told = retry_after_seconds(response.headers.get("Retry-After")) or 0
        return ProviderRetryable(message, retry_after=max(told, QUOTA_RETRY_AFTER), **kwargs)
    if status >= 500 or data is None:
        # 5xx, or a body that is not Google's JSON (a proxy's HTML page, nothing, a cut-off answer).
        return ProviderRetryable(message, retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                                 **kwargs)
    if status == 401 or (status == 403 and reason == "insufficientPermissions"):
        return ProviderAuthError(message, **kwargs)
    if status in (404, 410):
        return MeetingGone(message, **kwargs)
    return ProviderRefused(message, **kwargs)


def classify_oauth(response: requests.Response, what: str) -> ProviderError:
    """The wing's error for an OAuth endpoint's answer, whose errors are ``{"error": "<code>"}`` (facts §1).

    ``invalid_grant`` (revoked, expired, unused for six months …) and a 401 (``invalid_client``:
    our credentials) are ``ProviderAuthError`` with the code, so ``link.access_token`` can tell the
    host's dead grant from our configuration; a 404 or 410 here is never "meeting gone".
    """
    status = response.status_code
    data = _json(response)
    error = _reason(data)
    message = f"{what}: HTTP {status}" + (f" {error}" if error else "")
    kwargs = {"status": status, "code": error or None}
    wait = retry_after_seconds(response.headers.get("Retry-After"))
    if "quota" in error:
        return ProviderRetryable(message, retry_after=max(wait or 0, QUOTA_RETRY_AFTER), **kwargs)
    if status == 429 or status >= 500 or data is None or "rate_limit" in error:
        return ProviderRetryable(message, retry_after=wait, **kwargs)
    if error == "invalid_grant" or status == 401:
        return ProviderAuthError(message, **kwargs)
    return ProviderRefused(message, **kwargs)


def _send(method: str, url: str, what: str, **kwargs) -> requests.Response:
    try:
        return http().request(method, url, **kwargs)
    except requests.Timeout:
        # Google may have done it anyway (an insert then shows up under our event id: ``find``).
        raise ProviderRetryable(f"{what}: timeout", answered=False) from None
    except requests.RequestException as exc:
        raise ProviderRetryable(f"{what}: {type(exc).__name__}", answered=False) from None


class GoogleOAuth:
    """Google's token and revoke endpoints (the code exchange itself is Authlib's)."""

    def __init__(self, token_url: str, revoke_url: str, client_id: str, client_secret: str, timeout: float = 10):
        self.token_url = token_url
        self.revoke_url = revoke_url
        self.client = {"client_id": client_id, "client_secret": client_secret}  # client_secret_post
        self.timeout = timeout

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token. :raises ProviderAuthError: ``invalid_grant`` (code) — the grant is dead."""
        response = _send("POST", self.token_url, "token refresh", timeout=self.timeout,
                         data={"grant_type": "refresh_token", "refresh_token": refresh_token, **self.client})
        data = _json(response)
        if response.status_code == 200 and data is not None and data.get("access_token"):
            return TokenSet.from_response(data)
        if response.status_code == 200:
            raise ProviderRetryable("token refresh: HTTP 200 without a token", status=200)
        raise classify_oauth(response, "token refresh")

    def revoke(self, token: str) -> None:
        """Revoke the grant the token belongs to (a refresh token's revocation ends the whole grant).

        An already dead token counts as revoked: Google answers 400 for it (facts §1). Google's 200
        has no body to check, so any 200 counts as done.
        """
        response = _send("POST", self.revoke_url, "revoke", timeout=self.timeout, data={"token": token})
        if response.status_code == 200:
            return
        data = _json(response)
        if data is not None and (response.status_code == 400 or _reason(data) in ("invalid_token", "invalid_grant")):
            return  # invalid_token / invalid_grant: nothing left to revoke
        raise classify_oauth(response, "revoke")


class CalendarApi:
    """The events of one host's primary calendar.

    :param token: returns a usable access token; called with ``force_refresh=True`` once after a
        401, and the call is retried once.
    """

    EVENTS = "/calendars/primary/events"

    def __init__(self, base_url: str, token: Callable[..., str], timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, expected: int, what: str, **kwargs) -> requests.Response:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(force_refresh=attempt == 2)}"}
            response = _send(method, self.base_url + path, what, headers=headers, timeout=self.timeout, **kwargs)
            if response.status_code == expected:
                return response
            if response.status_code == 401 and attempt == 1:
                continue  # expired or revoked early (facts §4 authError): refresh once, retry once
            raise classify(response, what)
        raise AssertionError("unreachable")

    def _event(self, response: requests.Response, what: str) -> Event:
        data = _json(response)
        if data is None or not isinstance(data.get("id"), str) or not data["id"]:
            raise ProviderRetryable(f"{what}: HTTP {response.status_code} without an event", status=response.status_code)
        return Event.from_json(data)

    def insert_event(self, spec: MeetingSpec) -> Event:
        """``POST …/events?conferenceDataVersion=1&sendUpdates=none`` → 200, under our own event id.

        A repeat of the same id answers 409 ``duplicate`` (facts §3): an earlier attempt made it,
        so the existing event is read and used. No ``attendees``, ever: guests' addresses never go
        to Google, and Google sends no invitations (guests get the link in our emails).
        """
        body = {
            "id": event_id(spec),
            "summary": spec.title,
            "start": {"dateTime": rfc3339(spec.starts_at, spec.timezone), "timeZone": spec.timezone},
            "end": {"dateTime": rfc3339(spec.ends_at, spec.timezone), "timeZone": spec.timezone},
            "conferenceData": {"createRequest": new_create_request()},
        }
        try:
            response = self._request("POST", self.EVENTS, 200, "events.insert", json=body,
                                     params={"conferenceDataVersion": 1, "sendUpdates": "none"})
        except ProviderRefused as exc:
            if exc.status != 409:
                raise
            return self.get_event(body["id"])
        return self._event(response, "events.insert")

    def get_event(self, event_id: str) -> Event:
        """``GET …/events/{id}`` → 200; a deleted event still answers, with ``status: cancelled``."""
        return self._event(self._request("GET", f"{self.EVENTS}/{event_id}", 200, "events.get"), "events.get")

    def patch_event(self, event_id: str, body: dict) -> Event:
        """``PATCH …/events/{id}?conferenceDataVersion=1&sendUpdates=none`` → 200: only the fields given."""
        response = self._request("PATCH", f"{self.EVENTS}/{event_id}", 200, "events.patch", json=body,
                                 params={"conferenceDataVersion": 1, "sendUpdates": "none"})
        return self._event(response, "events.patch")

    def delete_event(self, event_id: str) -> None:
        """``DELETE …/events/{id}?sendUpdates=none`` → 204. Gone already (404, 410 ``deleted``) counts as deleted."""
        try:
            self._request("DELETE", f"{self.EVENTS}/{event_id}", 204, "events.delete", params={"sendUpdates": "none"})
        except MeetingGone:
            return


def event_id(spec: MeetingSpec) -> str:
    """Our id for the slot's event: base32hex (a–v, 0–9) as Google requires (facts §3); the issue key
    (uuid hex) makes it unique per issuance and the same across retries, so a repeat is a 409."""
    return f"slot{spec.slot_id}k{spec.issue_key}".lower()


def new_create_request() -> dict:
    """A fresh Meet ``createRequest``: Google ignores a repeated ``requestId`` (facts §3)."""
    return {"requestId": uuid.uuid4().hex, "conferenceSolutionKey": {"type": "hangoutsMeet"}}


def rfc3339(moment: datetime, zone: str) -> str:
    """The moment in the host's zone, with its offset (``2026-07-01T10:00:00+09:00``)."""
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")
