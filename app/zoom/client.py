"""The one Zoom client: exactly the endpoints we use, with errors classified once.

Every call states its expected status (201 create, 200 get, 204 patch/delete). Zoom's errors
become a few exceptions the domain code can act on (zoom-facts §3–4):

- ``ProviderRetryable``: per-second 429 (``retry_after`` from ``Retry-After`` — an ISO date, seconds,
  an HTTP date, or absent), 5xx, timeouts, and bodies that are not JSON (Zoom sometimes answers XML);
- ``ProviderDailyLimit``: the 100 create/update requests per user per UTC day (``resume_at``);
- ``ProviderAuthError``: the grant is unusable (``invalid_grant``; 401 code 124 even after a refresh);
- ``MeetingGone`` (404 / 3001), ``MeetingInProgress`` (3002), ``MeetingEnded`` (3007);
- ``ProviderRefused``: any other 4xx.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import requests

from app import clock
from app.meetings.provider import (MeetingEnded, MeetingGone, MeetingInProgress, ProviderAuthError,
                                   ProviderDailyLimit, ProviderError, ProviderRefused, ProviderRetryable, http)

#: Zoom's per-user limit of meeting create/update requests per UTC day (zoom-facts §4).
DAILY_CREATE_UPDATE_LIMIT = 100


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: datetime
    scope: str = ""

    @classmethod
    def from_response(cls, data: dict) -> TokenSet:
        """Zoom returns ``expires_in`` (3599 or 3600), never an absolute time."""
        return cls(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=clock.now() + timedelta(seconds=int(data.get("expires_in", 3599))),
            scope=data.get("scope", ""),
        )


@dataclass(frozen=True)
class ZoomUser:
    id: str
    account_id: str
    email: str
    type: int
    timezone: str
    display_name: str


@dataclass(frozen=True)
class Meeting:
    id: int
    join_url: str
    start_url: str
    password: str
    status: str
    topic: str
    start_time: str
    #: ``settings.approval_type``: 0 automatic registration, 1 manual, 2 none (the default).
    approval_type: int = 2


@dataclass(frozen=True)
class Registrant:
    """One registration on a meeting: its id and the registrant's own join URL."""

    id: str
    join_url: str


def next_utc_midnight(now: datetime | None = None) -> datetime:
    """When Zoom's daily limit resets: the next 00:00 UTC (09:00 JST)."""
    now = now or clock.now()
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def parse_retry_after(value: str | None, now: datetime | None = None) -> datetime | None:
    """``Retry-After`` as a moment: ISO date (Zoom's daily limit), seconds, HTTP date, or None."""
    if not value:
        return None
    now = now or clock.now()
    value = value.strip()
    try:
        return now + timedelta(seconds=float(value))
    except (ValueError, OverflowError):  # "inf", 1e300 …: not a usable delay
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _json(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _classify(response: requests.Response) -> ProviderError:
    """Turn a non-expected response into the matching exception."""
    status = response.status_code
    data = _json(response)
    code = data.get("code")
    message = str(data.get("message") or data.get("reason") or response.text[:200] or status)
    kwargs = {"status": status, "code": code}
    if status == 429:
        daily = (response.headers.get("X-RateLimit-Type", "").lower().startswith("daily")
                 or "daily" in message.lower())
        resume = parse_retry_after(response.headers.get("Retry-After"))
        if daily:
            return ProviderDailyLimit(message, resume_at=resume or next_utc_midnight(), **kwargs)
        seconds = max((resume - clock.now()).total_seconds(), 0) if resume else None
        return ProviderRetryable(message, retry_after=seconds, **kwargs)
    if status >= 500 or not data:
        # 5xx, or a body that is not Zoom's JSON (XML happens on some token errors): transient.
        return ProviderRetryable(f"HTTP {status}: {message}", **kwargs)
    if status == 401:
        return ProviderAuthError(message, **kwargs)
    if status == 404 or code == 3001:
        return MeetingGone(message, **kwargs)
    if code == 3002:
        return MeetingInProgress(message, **kwargs)
    if code == 3007:
        return MeetingEnded(message, **kwargs)
    return ProviderRefused(message, **kwargs)


class ZoomOAuth:
    """Zoom's token endpoint: refresh and revoke (the code exchange is Authlib's)."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}"}  # client_secret_basic

    def _post(self, path: str, data: dict) -> requests.Response:
        try:
            return http().post(self.base_url + path, data=data, headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ProviderRetryable(f"{type(exc).__name__}", answered=False) from None

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new token pair; the old refresh token dies at once (rotation, zoom-facts §1)."""
        response = self._post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})
        data = _json(response)
        if response.status_code == 200 and "access_token" in data:
            return TokenSet.from_response(data)
        if response.status_code in (400, 401) and data.get("error") in ("invalid_grant", "invalid_client",
                                                                        "invalid_request"):
            raise ProviderAuthError(data.get("reason") or data["error"], status=response.status_code)
        raise _classify(response)

    def revoke(self, access_token: str) -> None:
        """Revoke the grant. An already dead token counts as revoked."""
        response = self._post("/oauth/revoke", {"token": access_token})
        if response.status_code == 200 or response.status_code in (400, 401):
            return
        raise _classify(response)


class ZoomApi:
    """The REST endpoints we call, for one host.

    :param token: returns a usable access token; called with ``force_refresh=True`` once after a
        401/124, and the call is retried once.
    """

    def __init__(self, base_url: str, token: Callable[..., str], timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, expected: int, **kwargs) -> requests.Response:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token(force_refresh=attempt == 2)}"}
            try:
                response = http().request(method, self.base_url + path, headers=headers,
                                            timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise ProviderRetryable(f"{method} {path}: {type(exc).__name__}", answered=False) from None
            if response.status_code == expected:
                return response
            if response.status_code == 401 and _json(response).get("code") == 124 and attempt == 1:
                continue  # token expired or revoked early: refresh once, retry once
            raise _classify(response)
        raise AssertionError("unreachable")

    def users_me(self) -> ZoomUser:
        """``GET /users/me`` — user-level apps must use ``me`` (zoom-facts §1)."""
        data = _json(self._request("GET", "/users/me", 200))
        return ZoomUser(id=data["id"], account_id=data.get("account_id", ""), email=data.get("email", ""),
                        type=int(data.get("type", 1)), timezone=data.get("timezone", ""),
                        display_name=data.get("display_name", ""))

    def create_meeting(self, body: dict) -> Meeting:
        """``POST /users/me/meetings`` → 201."""
        return self._meeting(_json(self._request("POST", "/users/me/meetings", 201, json=body)))

    def list_meetings(self) -> list[dict]:
        """``GET /users/me/meetings?type=upcoming`` → 200: the host's upcoming meetings (first page)."""
        data = _json(self._request("GET", "/users/me/meetings", 200, params={"type": "upcoming", "page_size": 300}))
        return list(data.get("meetings") or [])

    def get_meeting(self, meeting_id: int) -> Meeting:
        """``GET /meetings/{id}`` → 200, with a fresh ``start_url`` (they expire after 2 hours)."""
        return self._meeting(_json(self._request("GET", f"/meetings/{meeting_id}", 200)))

    def update_meeting(self, meeting_id: int, body: dict) -> None:
        """``PATCH /meetings/{id}`` → 204 (no body)."""
        self._request("PATCH", f"/meetings/{meeting_id}", 204, json=body)

    def delete_meeting(self, meeting_id: int) -> None:
        """``DELETE /meetings/{id}`` → 204. A meeting already gone (404/3001) counts as deleted."""
        try:
            self._request("DELETE", f"/meetings/{meeting_id}", 204)
        except MeetingGone:
            return

    # registrants (zoom-registrants-attendance.md §2)
    def add_registrant(self, meeting_id: int, first_name: str, email: str) -> Registrant:
        """``POST /meetings/{id}/registrants`` → 201 with the registrant's own ``join_url``.

        A 201 without ``registrant_id`` or ``join_url`` counts as unanswered: Zoom may have
        registered the guest, so the next attempt looks before registering again.
        """
        data = _json(self._request("POST", f"/meetings/{meeting_id}/registrants", 201,
                                   json={"first_name": first_name, "email": email}))
        if not data.get("registrant_id") or not data.get("join_url"):
            raise ProviderRetryable("POST registrants: 201 without registrant_id/join_url", status=201,
                                    answered=False)
        return Registrant(id=str(data["registrant_id"]), join_url=str(data["join_url"]))

    def registrants(self, meeting_id: int) -> list[dict]:
        """``GET /meetings/{id}/registrants`` → 200: every approved registrant, page after page."""
        found, token = [], ""
        while True:
            params = {"status": "approved", "page_size": 300, **({"next_page_token": token} if token else {})}
            data = _json(self._request("GET", f"/meetings/{meeting_id}/registrants", 200, params=params))
            if "registrants" not in data:
                raise ProviderRetryable("GET registrants: no registrants in the answer", status=200)
            found += [item for item in data["registrants"] if isinstance(item, dict)]
            token = data.get("next_page_token") or ""
            if not token:
                return found

    def cancel_registrant(self, meeting_id: int, registrant_id: str, email: str = "") -> None:
        """``PUT /meetings/{id}/registrants/status`` (``cancel``) → 204. A meeting gone counts as done."""
        registrant = {"id": registrant_id, **({"email": email} if email else {})}
        try:
            self._request("PUT", f"/meetings/{meeting_id}/registrants/status", 204,
                          json={"action": "cancel", "registrants": [registrant]})
        except MeetingGone:
            return

    @staticmethod
    def _meeting(data: dict) -> Meeting:
        settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        return Meeting(id=int(data["id"]), join_url=data.get("join_url", ""), start_url=data.get("start_url", ""),
                       password=data.get("password", ""), status=data.get("status", "waiting"),
                       topic=data.get("topic", ""), start_time=data.get("start_time", ""),
                       approval_type=int(settings.get("approval_type", 2)))
