"""In-memory state of the Zoom emulator: users, codes, grants, meetings, counters, faults, calls.

Everything the emulator knows lives in one :class:`EmulatorState`, guarded by one lock, so a
threaded server can answer many requests at once. The methods here hold the Zoom rules (token
rotation, code expiry, meeting validation, the 100/day budget); ``app.py`` only turns HTTP into
calls on this object and :class:`ZoomError` back into HTTP. Section numbers (§) refer to
``shared/reference/zoom-facts.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_WEBHOOK_SECRET_TOKEN = "sandbox-webhook-secret"
DEFAULT_ACCESS_TOKEN_TTL = 3600  # §1: access tokens live one hour
CODE_TTL = timedelta(minutes=5)  # §1: "the code expires in 5 minutes" (4733)
START_URL_TTL = timedelta(hours=2)  # §3: start_url expires after 2 hours
DAILY_MEETING_WRITES = 100  # §4: 100 create/update requests per day (UTC) per user
SCOPE = "meeting:read meeting:write user:read"
CALL_LOG_SIZE = 10_000
# Registrants (shared/reference/zoom-registrants-attendance.md §1–2, "R§" below).
REGISTRANT_CAP = 4_999  # R§1: "maximum limit of 4,999 registrants per meeting" (3043 when full)
REGISTRATIONS_PER_DAY = 3  # R§2: "3 requests per day (UTC) for the same registrant in the same meeting"
REGISTRANT_STATUSES = ("pending", "approved", "denied")  # the list's ``status`` filter (R§2)
STATUS_BATCH_MAX = 30  # R§2: meetingRegistrantStatus takes at most 30 registrants
PAGE_TOKEN_TTL = timedelta(minutes=15)  # R§2: next_page_token expires after 15 minutes

BASIC, LICENSED = 1, 2  # §2: user `type` 1 Basic (40-minute cut), 2 Licensed
SANDBOX_SIGNUP = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)  # every test user's created_at
PLAN_NAMES = {1: "Basic", 2: "Licensed", 4: "Unassigned without Meetings Basic", 99: "None"}
MEETING_STATUSES = ("waiting", "started", "ended")

FAULT_KINDS = ("429_per_second", "429_daily", "500", "503", "timeout", "xml", "401_124")
#: A fault's ``retry_after`` that stands for the next 00:00 UTC, formatted as an ISO datetime.
NEXT_MIDNIGHT = "next_midnight"

# §3: passcode ≤ 10 characters from [A-Za-z0-9@-_*]; start_time GMT with Z or local without Z.
_PASSWORD_RE = re.compile(r"[A-Za-z0-9@_*-]{1,10}")
_START_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z?")
# §3 settings with fixed values; other settings are echoed back as sent.
_SETTINGS_ENUMS = {
    "jbh_time": (0, 5, 10),
    "approval_type": (0, 1, 2),
    "auto_recording": ("local", "cloud", "none"),
    "audio": ("both", "telephony", "voip", "thirdParty"),
    "registration_type": (1, 2, 3),
    "encryption_type": ("enhanced_encryption", "e2ee"),
}
_SETTINGS_BOOLEANS = (
    "host_video", "participant_video", "join_before_host", "mute_upon_entry", "waiting_room",
    "use_pmi", "watermark", "meeting_authentication", "email_notification", "private_meeting",
    "alternative_hosts_email_notification", "registrants_email_notification",
    "registrants_confirmation_email", "allow_multiple_devices", "close_registration",
)
#: Settings Zoom returns when the request leaves them out (defaults from the meetings spec, §3).
DEFAULT_SETTINGS = {
    "host_video": False,
    "participant_video": False,
    "cn_meeting": False,
    "in_meeting": False,
    "join_before_host": False,
    "jbh_time": 0,
    "mute_upon_entry": False,
    "watermark": False,
    "use_pmi": False,
    "approval_type": 2,
    "audio": "both",
    "auto_recording": "none",
    "enforce_login": False,
    "enforce_login_domains": "",
    "alternative_hosts": "",
    "alternative_host_update_polls": False,
    "close_registration": False,
    "show_share_button": False,
    # ⚠ Its default is undocumented (R§2), and in a c. 2020 thread two people joined on one
    # registrant link: the emulator lets them unless the meeting says ``false``.
    "allow_multiple_devices": True,
    "registrants_confirmation_email": True,
    "waiting_room": False,
    "registrants_email_notification": True,
    "meeting_authentication": False,
    "encryption_type": "enhanced_encryption",
    "approved_or_denied_countries_or_regions": {"enable": False},
    "breakout_room": {"enable": False},
    "internal_meeting": False,
    "continuous_meeting_chat": {"enable": False, "auto_add_invited_external_users": False},
    "participant_focused_meeting": False,
    "push_change_to_calendar": False,
    "resources": [],
    "alternative_hosts_email_notification": True,
    "focus_mode": False,
    "private_meeting": False,
    "email_notification": True,
    "host_save_video_order": False,
    "sign_language_interpretation": {"enable": False},
}


class ZoomError(Exception):
    """An answer in Zoom's error shape: HTTP status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def api_error(status: int, code: int, message: str, errors: list | None = None) -> ZoomError:
    """Build a REST error ``{"code", "message"[, "errors"]}`` (§3 "General error shape")."""
    body = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return ZoomError(status, body)


def oauth_error(status: int, error: str, reason: str) -> ZoomError:
    """Build an OAuth error ``{"reason", "error"}`` as zoom.us/oauth/token answers (§1)."""
    return ZoomError(status, {"reason": reason, "error": error})


def iso(moment: datetime) -> str:
    """Format an aware datetime as Zoom does: UTC, seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_utc_midnight(moment: datetime) -> datetime:
    """Return the next 00:00 UTC after ``moment`` (when the daily budgets reset, §4)."""
    day = moment.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _stable_digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode()).digest()


def zoom_id(seed: str) -> str:
    """Return a stable Zoom-like 22-character id (URL-safe base64 of 16 bytes) for ``seed``."""
    return base64.urlsafe_b64encode(_stable_digest(seed)[:16]).decode().rstrip("=")


def pkce_s256(verifier: str) -> str:
    """Return the RFC 7636 S256 challenge: base64url, no padding, of SHA-256(verifier)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class User:
    """A Zoom user; ids are derived from the email so they survive resets and restarts."""

    email: str
    type: int = BASIC
    first_name: str = "Sandbox"
    last_name: str = "User"
    timezone: str = "Asia/Tokyo"
    created_at: datetime = SANDBOX_SIGNUP

    @property
    def id(self) -> str:
        """The user's 22-character Zoom id."""
        return zoom_id("user:" + self.email)

    @property
    def account_id(self) -> str:
        """The id of the user's own account (a personal host is their own account, §4)."""
        return zoom_id("account:" + self.email)

    @property
    def pmi(self) -> int:
        """The user's 10-digit personal meeting id."""
        return int.from_bytes(_stable_digest("pmi:" + self.email)[:8], "big") % 9_000_000_000 + 1_000_000_000

    def as_zoom(self, root: str) -> dict:
        """The ``GET /users/me`` body (operationId ``user`` in the users spec, §2)."""
        return {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": f"{self.first_name} {self.last_name}",
            "email": self.email,
            "type": self.type,
            "role_name": "Owner",
            "pmi": self.pmi,
            "use_pmi": False,
            "personal_meeting_url": f"{root}/j/{self.pmi}",
            "timezone": self.timezone,
            "verified": 1,
            "dept": "",
            "created_at": iso(self.created_at),
            "user_created_at": iso(self.created_at),
            "last_login_time": iso(self.created_at),
            "pic_url": "",
            "cms_user_id": "",
            "group_ids": [],
            "im_group_ids": [],
            "account_id": self.account_id,
            "account_number": self.pmi % 90_000_000 + 10_000_000,
            "language": "en-US",
            "phone_country": "",
            "phone_number": "",
            "status": "active",
            "role_id": "0",
            "login_types": [100],
            "cluster": "us06",
        }


@dataclass
class AuthCode:
    """An authorization code handed to ``redirect_uri`` (single use, 5 minutes)."""

    code: str
    client_id: str
    email: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str
    issued_at: datetime
    used: bool = False
    grant: Grant | None = None


@dataclass
class Grant:
    """One authorization of a user by a client: one live refresh token, any number of access tokens."""

    client_id: str
    email: str
    refresh_token: str
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class Meeting:
    """A scheduled meeting as stored by the emulator (times in UTC)."""

    id: int
    uuid: str
    host_email: str
    topic: str
    type: int
    start_time: datetime
    duration: int
    timezone: str
    agenda: str
    password: str
    h323_password: str
    encrypted_password: str
    settings: dict
    created_at: datetime
    status: str = "waiting"
    deleted: bool = False
    #: Everyone ever registered, in order (cancelled ones stay, with their status).
    registrants: list[Registrant] = field(default_factory=list)

    @property
    def with_registration(self) -> bool:
        """Registration is on: ``approval_type`` 0 (automatic) or 1 (manual); 2 is none (R§1)."""
        return self.settings.get("approval_type", 2) in (0, 1)


@dataclass
class Registrant:
    """One registration on a meeting: its own join link (``…/j/<meeting id>?tk=<token>``).

    ``status`` is ``approved``, ``pending``, ``denied`` or ``cancelled``. ⚠ Where Zoom lists a
    cancelled registrant is not documented: the list leaves them out of every ``status``.
    """

    id: str
    meeting_id: int
    email: str
    first_name: str
    last_name: str
    token: str
    status: str
    create_time: datetime
    participant_pin_code: int
    #: The device (the emulator's ``zoom_device`` cookie) in the meeting on this link now, and the
    #: devices it pushed out (``allow_multiple_devices: false``).
    device: str = ""
    bumped: list[str] = field(default_factory=list)


@dataclass
class Fault:
    """A canned failure served instead of (or before, for ``timeout``) the normal answer."""

    kind: str
    path: re.Pattern
    method: str | None
    times: int | None  # None: every matching request until the faults are cleared
    retry_after: int | float | str | None  # seconds, NEXT_MIDNIGHT, a literal header value, None: no header
    status: int  # for "xml": 401 or 500
    seconds: float  # for "timeout": how long to sleep

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        return (self.method is None or self.method == method) and bool(self.path.search(path))

    def as_json(self) -> dict:
        """The fault as the control API shows it."""
        return {
            "kind": self.kind, "path": self.path.pattern, "method": self.method, "times": self.times,
            "retry_after": self.retry_after, "status": self.status, "seconds": self.seconds,
        }


def parse_fault(spec: dict) -> Fault:
    """Build a :class:`Fault` from the control API's JSON; raise ``ValueError`` on a bad spec."""
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    try:
        path = re.compile(spec.get("path") or ".*")
    except re.error as exc:
        raise ValueError(f"path is not a regular expression: {exc}") from None
    times = spec.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError("times must be a positive integer, or null for every request")
    # §4: Retry-After may be seconds, an ISO datetime, or absent; the defaults are one of each kind.
    retry_after = spec.get("retry_after", {"429_per_second": 1, "429_daily": NEXT_MIDNIGHT}.get(kind))
    status = spec.get("status", 401)
    if kind == "xml" and status not in (401, 500):
        raise ValueError("status for an xml fault must be 401 or 500")
    try:
        seconds = float(spec.get("seconds", 5))
    except (TypeError, ValueError):
        raise ValueError("seconds must be a number") from None
    method = spec.get("method")
    return Fault(
        kind=kind, path=path, method=method.upper() if method else None, times=times,
        retry_after=retry_after, status=status, seconds=seconds,
    )


class EmulatorState:
    """Everything the emulator remembers, behind one re-entrant lock."""

    def __init__(self, *, client_id: str, client_secret: str, webhook_secret_token: str,
                 redirect_uris: list[str] | None, access_token_ttl: int):
        self.lock = threading.RLock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_secret_token = webhook_secret_token
        self.redirect_uris = list(redirect_uris) if redirect_uris else None
        self.initial_access_token_ttl = access_token_ttl
        self.reset()

    # -- lifecycle, clock and config -------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: back to the two preset users and default config."""
        with self.lock:
            self.users: dict[str, User] = {}
            for user in (
                User("basic@zoom.test", BASIC, "Basic", "Sandbox", "Asia/Tokyo"),
                User("licensed@zoom.test", LICENSED, "Licensed", "Sandbox", "Asia/Tokyo"),
            ):
                self.users[user.email] = user
            self.codes: dict[str, AuthCode] = {}
            self.grants: list[Grant] = []
            self.access_tokens: dict[str, tuple[Grant, datetime]] = {}
            self.refresh_tokens: dict[str, Grant] = {}
            self.meetings: dict[int, Meeting] = {}
            self.zaks: dict[str, tuple[int, datetime]] = {}
            self.meeting_writes: dict[tuple[str, str], int] = {}
            self.registrations: dict[tuple[int, str, str], int] = {}
            self.page_tokens: dict[str, tuple[int, str, int, datetime]] = {}
            self.faults: list[Fault] = []
            self.call_log: deque[dict] = deque(maxlen=CALL_LOG_SIZE)
            self.access_token_ttl = self.initial_access_token_ttl
            self.clock_offset = timedelta(0)
            self.latency_seconds = 0.0

    def now(self) -> datetime:
        """The emulator's clock: real UTC shifted by the offset set through the control API."""
        return datetime.now(UTC) + self.clock_offset

    def configure(self, values: dict) -> None:
        """Apply control-API config: ``access_token_ttl``, ``now``, ``advance_seconds``, ``latency_seconds``."""
        with self.lock:
            if "access_token_ttl" in values:
                ttl = values["access_token_ttl"]
                if not isinstance(ttl, (int, float)) or ttl <= 0:
                    raise ValueError("access_token_ttl must be a positive number of seconds")
                self.access_token_ttl = ttl
            if "now" in values:
                if values["now"] is None:
                    self.clock_offset = timedelta(0)
                elif not isinstance(values["now"], str):
                    raise ValueError("now must be an ISO 8601 string or null")
                else:
                    target = datetime.fromisoformat(values["now"].replace("Z", "+00:00"))
                    if target.tzinfo is None:
                        raise ValueError("now must carry a UTC offset or Z")
                    self.clock_offset = target - datetime.now(UTC)
            if "advance_seconds" in values:
                self.clock_offset += timedelta(seconds=values["advance_seconds"])
            if "latency_seconds" in values:
                self.latency_seconds = float(values["latency_seconds"])

    def config(self) -> dict:
        """The current control-API config."""
        with self.lock:
            return {
                "client_id": self.client_id,
                "redirect_uris": self.redirect_uris,
                "access_token_ttl": self.access_token_ttl,
                "now": iso(self.now()),
                "latency_seconds": self.latency_seconds,
            }

    # -- users -------------------------------------------------------------------------------

    def add_user(self, email: str, type: int = BASIC, first_name: str = "Sandbox",
                 last_name: str = "User", timezone: str = "Asia/Tokyo") -> User:
        """Add a test user; raise ``ValueError`` if the email is taken or a value is invalid."""
        _check_user_values({"type": type, "timezone": timezone})
        with self.lock:
            if email in self.users:
                raise ValueError(f"user {email} already exists")
            user = User(email, type, first_name, last_name, timezone)
            self.users[email] = user
            return user

    def list_users(self) -> list[User]:
        """All users, sorted by email."""
        with self.lock:
            return sorted(self.users.values(), key=lambda user: user.email)

    def user(self, email: str) -> User:
        """The user with this email; raise ``KeyError`` if unknown."""
        with self.lock:
            return self.users[email]

    def update_user(self, email: str, values: dict) -> User:
        """Change a user's plan ``type`` (or names/timezone); raise ``KeyError`` if unknown."""
        _check_user_values(values)
        with self.lock:
            user = self.users[email]
            for name in ("type", "first_name", "last_name", "timezone"):
                if name in values:
                    setattr(user, name, values[name])
            return user

    # -- OAuth -------------------------------------------------------------------------------

    def client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        """Whether the Basic-auth credentials are this app's (§1: client_secret_basic)."""
        return hmac.compare_digest(client_id or "", self.client_id) and hmac.compare_digest(
            client_secret or "", self.client_secret
        )

    def redirect_allowed(self, uri: str) -> bool:
        """§1 4709: the redirect must be on the allow list (default: any local http URL)."""
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")

    def issue_code(self, email: str, client_id: str, redirect_uri: str,
                   code_challenge: str | None, code_challenge_method: str | None) -> str:
        """Record the user's consent and return a fresh authorization code."""
        with self.lock:
            if email not in self.users:
                raise KeyError(email)
            code = secrets.token_urlsafe(24)
            self.codes[code] = AuthCode(
                code=code, client_id=client_id, email=email, redirect_uri=redirect_uri,
                code_challenge=code_challenge or None,
                # §1: code_challenge_method defaults to plain
                code_challenge_method=code_challenge_method or "plain",
                issued_at=self.now(),
            )
            return code

    def exchange_code(self, client_id: str, code: str | None, redirect_uri: str | None,
                      code_verifier: str | None) -> dict:
        """``grant_type=authorization_code``: redeem a code once for a new grant's tokens."""
        with self.lock:
            entry = self.codes.get(code or "")
            if entry is None or entry.client_id != client_id:
                raise oauth_error(400, "invalid_grant", "Invalid authorization code")
            if entry.used:
                # RFC 6749 §4.1.2: a replayed code revokes what it was exchanged for.
                if entry.grant is not None:
                    self._revoke(entry.grant)
                raise oauth_error(400, "invalid_grant", "Invalid authorization code")
            entry.used = True  # any redemption attempt burns the code
            if self.now() - entry.issued_at > CODE_TTL:  # §1: 4733 "Code is expired"
                raise oauth_error(400, "invalid_grant", "Invalid authorization code")
            if redirect_uri != entry.redirect_uri:
                raise oauth_error(400, "invalid_request", "Redirect URI mismatch.")
            if entry.code_challenge is not None:
                if not code_verifier:
                    raise oauth_error(400, "invalid_request", "Missing code_verifier.")
                expected = pkce_s256(code_verifier) if entry.code_challenge_method == "S256" else code_verifier
                if not hmac.compare_digest(expected, entry.code_challenge):
                    raise oauth_error(400, "invalid_grant", "Invalid code_verifier.")
            # §1 4741: with multiple authorizations only the last one stays valid.
            for grant in self.grants:
                if grant.client_id == client_id and grant.email == entry.email and not grant.revoked:
                    self._revoke(grant)
            grant = Grant(client_id=client_id, email=entry.email, refresh_token="")
            self.grants.append(grant)
            entry.grant = grant
            return self._rotate(grant)

    def refresh(self, client_id: str, refresh_token: str | None) -> dict:
        """``grant_type=refresh_token``: rotate; the old refresh token dies at once (§1)."""
        with self.lock:
            grant = self.refresh_tokens.get(refresh_token or "")
            if grant is None or grant.client_id != client_id:
                raise oauth_error(400, "invalid_grant", "Invalid Token!")  # §1, raycast#10896
            return self._rotate(grant)

    def revoke(self, client_id: str, token: str | None) -> None:
        """``/oauth/revoke``: kill the grant the access (or refresh) token belongs to."""
        with self.lock:
            found = self.access_tokens.get(token or "")
            grant = found[0] if found else self.refresh_tokens.get(token or "")
            if grant is None or grant.client_id != client_id:
                raise oauth_error(400, "invalid_request", "Invalid Token!")
            self._revoke(grant)

    def deauthorize(self, email: str, client_id: str) -> None:
        """The user removed the app: every grant of that user for that client dies."""
        with self.lock:
            for grant in self.grants:
                if grant.email == email and grant.client_id == client_id:
                    self._revoke(grant)

    def _rotate(self, grant: Grant) -> dict:
        """Give ``grant`` a new refresh token and a new access token; return the token response."""
        self.refresh_tokens.pop(grant.refresh_token, None)
        grant.refresh_token = secrets.token_urlsafe(48)
        self.refresh_tokens[grant.refresh_token] = grant
        access_token = secrets.token_urlsafe(48)
        # Earlier access tokens stay usable until they expire; only revocation kills them.
        self.access_tokens[access_token] = (grant, self.now() + timedelta(seconds=self.access_token_ttl))
        grant.access_tokens.add(access_token)
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "refresh_token": grant.refresh_token,
            # §1: Zoom reports 3599 for a one-hour token
            "expires_in": max(int(self.access_token_ttl) - 1, 0),
            "scope": SCOPE,
        }

    def _revoke(self, grant: Grant) -> None:
        grant.revoked = True
        self.refresh_tokens.pop(grant.refresh_token, None)
        for token in grant.access_tokens:
            self.access_tokens.pop(token, None)
        grant.access_tokens.clear()

    def authenticate(self, authorization: str | None) -> User:
        """Resolve a ``Bearer`` header to its user, or raise 401 code 124 (§3)."""
        scheme, _, token = (authorization or "").partition(" ")
        with self.lock:
            found = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if found is None:
                raise api_error(401, 124, "Invalid access token.")
            grant, expires_at = found
            if self.now() >= expires_at:
                raise api_error(401, 124, "Access token is expired.")
            return self.users[grant.email]

    # -- meetings ----------------------------------------------------------------------------

    def count_meeting_write(self, user: User) -> None:
        """Spend one of the user's 100 daily create/update requests, or raise the 429 (§4)."""
        with self.lock:
            now = self.now()
            key = (user.email, now.date().isoformat())
            if self.meeting_writes.get(key, 0) >= DAILY_MEETING_WRITES:
                raise ZoomError(
                    429,
                    {
                        "code": 429,
                        "message": f"You have exceeded the daily rate limit ({DAILY_MEETING_WRITES}) of Meeting "
                        "Create/Update API requests permitted for this particular user. You may resume these "
                        "requests at GMT 00:00:00.",
                    },
                    {
                        "X-RateLimit-Type": "Daily-limit",
                        "X-RateLimit-Limit": str(DAILY_MEETING_WRITES),
                        "X-RateLimit-Remaining": "0",
                        "Retry-After": iso(next_utc_midnight(now)),
                    },
                )
            self.meeting_writes[key] = self.meeting_writes.get(key, 0) + 1

    def create_meeting(self, user: User, body: object) -> Meeting:
        """``POST /users/me/meetings``: validate like Zoom and store a waiting meeting."""
        fields = _meeting_fields(body, default_timezone=user.timezone)
        with self.lock:
            meeting_id = secrets.randbelow(9 * 10**10) + 10**10  # §3: int64, 11 digits here
            while meeting_id in self.meetings:
                meeting_id = secrets.randbelow(9 * 10**10) + 10**10
            settings = dict(DEFAULT_SETTINGS)
            settings.update(fields.pop("settings", {}))
            _apply_waiting_room(settings)
            if user.type != LICENSED and settings.get("approval_type") in (0, 1):
                # R§1: registration needs a Licensed host. ⚠ What Zoom does with approval_type 0/1
                # from a Basic host is undocumented: the emulator creates the meeting without it.
                settings["approval_type"] = 2
            password = fields.pop("password", None) or _random_password()
            meeting = Meeting(
                id=meeting_id,
                uuid=base64.b64encode(secrets.token_bytes(16)).decode(),
                host_email=user.email,
                topic=fields.get("topic", "Zoom Meeting"),
                type=fields.get("type", 2),
                start_time=fields.get("start_time", self.now().replace(microsecond=0)),
                duration=fields.get("duration", 60),
                timezone=fields.get("timezone", user.timezone),
                agenda=fields.get("agenda", ""),
                password=password,
                h323_password=_numeric_password(),
                encrypted_password=secrets.token_urlsafe(24),
                settings=settings,
                created_at=self.now().replace(microsecond=0),
            )
            self.meetings[meeting_id] = meeting
            return meeting

    def own_meeting(self, user: User, meeting_id: str) -> Meeting:
        """Fetch a live meeting hosted by ``user``: 404/3001 if gone, 400/3000 if someone else's."""
        with self.lock:
            meeting = self.meetings.get(int(meeting_id)) if meeting_id.isascii() and meeting_id.isdigit() else None
            if meeting is None or meeting.deleted:
                # §3: 404 code 3001 "Meeting {meetingId} is not found or has expired."
                raise api_error(404, 3001, f"Meeting {meeting_id} is not found or has expired.")
            if meeting.host_email != user.email:
                # meetings spec: 400 code 3000 "Cannot access meeting information."
                raise api_error(400, 3000, "Cannot access meeting information.")
            return meeting

    def update_meeting(self, user: User, meeting_id: str, body: object) -> None:
        """``PATCH /meetings/{id}``: merge the given fields (204 in the API)."""
        with self.lock:
            meeting = self.own_meeting(user, meeting_id)
            fields = _meeting_fields(body, default_timezone=meeting.timezone)
            if meeting.status == "started":
                # meetings spec, PATCH 400/3000: "You cannot update or delete meetings that have started"
                raise api_error(400, 3000, "You cannot update or delete meetings that have started using this method.")
            if "settings" in fields:
                meeting.settings.update(fields.pop("settings"))
                _apply_waiting_room(meeting.settings)
            if "password" in fields:
                meeting.encrypted_password = secrets.token_urlsafe(24)  # the join_url's pwd follows
            for name, value in fields.items():
                setattr(meeting, name, value)

    def delete_meeting(self, user: User, meeting_id: str) -> None:
        """``DELETE /meetings/{id}``: 3002 while in progress, 3007 once ended (§3)."""
        with self.lock:
            meeting = self.own_meeting(user, meeting_id)
            if meeting.status == "started":
                raise api_error(400, 3002, "Sorry, you cannot delete this meeting since it is in progress.")
            if meeting.status == "ended":
                raise api_error(400, 3007, "Sorry, you cannot delete this meeting since it has ended.")
            meeting.deleted = True

    def list_meetings(self) -> list[Meeting]:
        """Every meeting ever created, deleted ones included, oldest first."""
        with self.lock:
            return sorted(self.meetings.values(), key=lambda meeting: meeting.created_at)

    def meeting(self, meeting_id: int) -> Meeting:
        """Any stored meeting by id, deleted ones included; raise ``KeyError`` if never created."""
        with self.lock:
            return self.meetings[meeting_id]

    def set_meeting_status(self, meeting_id: int, status: str) -> Meeting:
        """Control API: mark a meeting ``waiting``, ``started`` or ``ended``."""
        if status not in MEETING_STATUSES:
            raise ValueError(f"status must be one of {', '.join(MEETING_STATUSES)}")
        with self.lock:
            meeting = self.meetings[meeting_id]
            meeting.status = status
            return meeting

    def delete_out_of_band(self, meeting_id: int) -> Meeting:
        """Control API: the host deleted the meeting on zoom.us (our app was not told)."""
        with self.lock:
            meeting = self.meetings[meeting_id]
            meeting.deleted = True
            return meeting

    def issue_zak(self, meeting: Meeting) -> str:
        """Mint the host token carried by a fresh ``start_url``."""
        with self.lock:
            zak = secrets.token_urlsafe(32)
            self.zaks[zak] = (meeting.id, self.now())
            return zak

    def zak_state(self, meeting_id: int, zak: str | None) -> str:
        """``"valid"``, ``"expired"`` (older than 2 hours, §3) or ``"invalid"`` for a start link."""
        with self.lock:
            found = self.zaks.get(zak or "")
            if found is None or found[0] != meeting_id:
                return "invalid"
            return "expired" if self.now() - found[1] > START_URL_TTL else "valid"

    def meeting_json(self, meeting: Meeting, root: str) -> dict:
        """The meeting as create (201) and get (200) return it, with a fresh ``start_url``."""
        with self.lock:
            host = self.users[meeting.host_email]
            return {
                "uuid": meeting.uuid,
                "id": meeting.id,
                "host_id": host.id,
                "host_email": host.email,
                "topic": meeting.topic,
                "type": meeting.type,
                # the spec's status enum is waiting|started: an ended scheduled meeting can start again (§6)
                "status": "started" if meeting.status == "started" else "waiting",
                "start_time": iso(meeting.start_time),
                "duration": meeting.duration,
                "timezone": meeting.timezone,
                "agenda": meeting.agenda,
                "created_at": iso(meeting.created_at),
                "start_url": f"{root}/s/{meeting.id}?zak={self.issue_zak(meeting)}",
                "join_url": f"{root}/j/{meeting.id}?pwd={meeting.encrypted_password}",
                "password": meeting.password,
                "h323_password": meeting.h323_password,
                "pstn_password": meeting.h323_password,
                "encrypted_password": meeting.encrypted_password,
                "settings": dict(meeting.settings),
                "pre_schedule": False,
            }

    # -- registrants (R§1–2) ------------------------------------------------------------------

    def _registration_meeting(self, user: User, meeting_id: str) -> Meeting:
        """The host's live meeting, if registrants can be managed on it.

        400 code 200 for a host who is not Licensed (DELETE's documented answer; ⚠ POST's error
        for a Basic host is undocumented, the emulator gives the same), 400 code 404 when the
        meeting has no registration (DELETE lists it so; batch registration gives it as 404).
        """
        meeting = self.own_meeting(user, meeting_id)
        if user.type != LICENSED:
            raise api_error(400, 200, f"Only available for paid users: {user.id}.")
        if not meeting.with_registration:
            raise api_error(400, 404, f"Registration has not been enabled for this meeting: {meeting.id}.")
        return meeting

    def add_registrant(self, user: User, meeting_id: str, body: object) -> tuple[Meeting, Registrant]:
        """``POST /meetings/{id}/registrants`` (meetingRegistrantCreate).

        The same email again on the same meeting gets the same registration back (counted: the
        fourth request of a UTC day is refused with 3000, R§2); a cancelled one is replaced.
        """
        fields = _registrant_fields(body)
        with self.lock:
            meeting = self._registration_meeting(user, meeting_id)
            email = fields["email"].lower()
            day_key = (meeting.id, email, self.now().date().isoformat())
            if self.registrations.get(day_key, 0) >= REGISTRATIONS_PER_DAY:
                # R§2, observed text (devforum t/74518)
                raise api_error(400, 3000, "You have reached the limit for the number of attendees you can add. "
                                           "Contact Zoom Support for more information.")
            self.registrations[day_key] = self.registrations.get(day_key, 0) + 1
            for registrant in meeting.registrants:
                if registrant.email.lower() == email and registrant.status in ("approved", "pending"):
                    return meeting, registrant
            active = [r for r in meeting.registrants if r.status in ("approved", "pending")]
            if len(active) >= REGISTRANT_CAP:
                raise api_error(400, 3043, "Meeting has reached maximum attendee capacity.")
            # R§2: auto_approve only matters for approval_type 1; 0 approves at once.
            approved = meeting.settings.get("approval_type") == 0 or bool(fields.get("auto_approve"))
            registrant = Registrant(
                id=base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
                meeting_id=meeting.id, email=fields["email"], first_name=fields["first_name"],
                last_name=fields.get("last_name", ""), token=secrets.token_urlsafe(24),
                status="approved" if approved else "pending", create_time=self.now().replace(microsecond=0),
                participant_pin_code=secrets.randbelow(900_000) + 100_000,
            )
            meeting.registrants.append(registrant)
            return meeting, registrant

    def registrant_join_url(self, registrant: Registrant, root: str) -> str:
        """The registrant's own link (R§1: "a unique join URL for each participant")."""
        return f"{root}/j/{registrant.meeting_id}?tk={registrant.token}"

    def registrant_json(self, registrant: Registrant, root: str) -> dict:
        """A registrant as the list (``meetingRegistrants``) and get (``meetingRegistrantGet``) return it."""
        body = {
            "id": registrant.id, "email": registrant.email, "first_name": registrant.first_name,
            "last_name": registrant.last_name, "status": registrant.status,
            "create_time": iso(registrant.create_time), "participant_pin_code": registrant.participant_pin_code,
            "address": "", "city": "", "country": "", "zip": "", "state": "", "phone": "", "industry": "",
            "org": "", "job_title": "", "purchasing_time_frame": "", "role_in_purchase_process": "",
            "no_of_employees": "", "comments": "", "custom_questions": [],
        }
        if registrant.status == "approved":  # R§2: no join_url while it waits for a manual approval
            body["join_url"] = self.registrant_join_url(registrant, root)
        return body

    def created_registrant_json(self, meeting: Meeting, registrant: Registrant, root: str) -> dict:
        """The 201 of ``meetingRegistrantCreate``: ``{id (the meeting's), join_url, registrant_id, …}``."""
        body = {"id": meeting.id, "registrant_id": registrant.id, "start_time": iso(meeting.start_time),
                "topic": meeting.topic, "occurrences": [], "participant_pin_code": registrant.participant_pin_code}
        if registrant.status == "approved":
            body["join_url"] = self.registrant_join_url(registrant, root)
        return body

    def list_registrants(self, user: User, meeting_id: str, status: str, page_size: int,
                         next_page_token: str) -> tuple[list[Registrant], int, str]:
        """``GET /meetings/{id}/registrants``: one page of one status; returns (page, total, next token)."""
        if status not in REGISTRANT_STATUSES:
            raise api_error(400, 300, f"Invalid status: {status}.")
        if not 1 <= page_size <= 300:
            raise api_error(400, 300, "page_size must be between 1 and 300.")
        with self.lock:
            meeting = self._registration_meeting(user, meeting_id)
            offset = 0
            if next_page_token:
                found = self.page_tokens.get(next_page_token)
                if found is None or found[:2] != (meeting.id, status) or self.now() > found[3]:
                    raise api_error(400, 300, "The next page token is invalid or expired.")
                offset = found[2]
            matching = [r for r in meeting.registrants if r.status == status]
            page = matching[offset:offset + page_size]
            token = ""
            if offset + page_size < len(matching):
                token = secrets.token_urlsafe(24)
                self.page_tokens[token] = (meeting.id, status, offset + page_size, self.now() + PAGE_TOKEN_TTL)
            return page, len(matching), token

    def _find_registrant(self, meeting: Meeting, registrant_id: str) -> Registrant:
        for registrant in meeting.registrants:
            if registrant.id == registrant_id and registrant.status != "deleted":
                return registrant
        # meetingregistrantdelete's documented 400 code 300
        raise api_error(400, 300, "The value that you entered for the Registrant ID field is invalid. "
                                  "Enter a valid value and try again.")

    def get_registrant(self, user: User, meeting_id: str, registrant_id: str) -> Registrant:
        """``GET /meetings/{id}/registrants/{registrantId}``."""
        with self.lock:
            return self._find_registrant(self._registration_meeting(user, meeting_id), registrant_id)

    def delete_registrant(self, user: User, meeting_id: str, registrant_id: str) -> None:
        """``DELETE /meetings/{id}/registrants/{registrantId}``: gone, its link refused."""
        with self.lock:
            self._find_registrant(self._registration_meeting(user, meeting_id), registrant_id).status = "deleted"

    def update_registrant_status(self, user: User, meeting_id: str, body: object) -> None:
        """``PUT /meetings/{id}/registrants/status``: approve, cancel or deny up to 30 registrants.

        Registrants are matched by ``id`` or ``email``; unknown ones are left alone. Cancelling does
        not remove someone already in the meeting (Zoom staff, R§2); their link is refused from then on.
        """
        if not isinstance(body, dict) or body.get("action") not in ("approve", "cancel", "deny"):
            raise api_error(400, 300, "Validation Failed.", [{"field": "action", "message": "Invalid field."}])
        listed = body.get("registrants") or []
        if not isinstance(listed, list) or len(listed) > STATUS_BATCH_MAX or not all(
                isinstance(item, dict) for item in listed):
            raise api_error(400, 300, "Validation Failed.", [{"field": "registrants", "message": "Invalid field."}])
        with self.lock:
            meeting = self._registration_meeting(user, meeting_id)
            ids = {item.get("id") for item in listed if item.get("id")}
            emails = {str(item.get("email")).lower() for item in listed if item.get("email")}
            new_status = {"approve": "approved", "cancel": "cancelled", "deny": "denied"}[body["action"]]
            for registrant in meeting.registrants:
                if registrant.status == "deleted" or not (
                        registrant.id in ids or (not ids and registrant.email.lower() in emails)):
                    continue
                if body["action"] == "cancel" and registrant.status != "approved":
                    continue  # "Cancel previously approved registrant's registration"
                registrant.status = new_status

    def join_with_token(self, meeting: Meeting, token: str, device: str) -> tuple[str, Registrant | None]:
        """A registrant link opened on ``device``: ``("joined", r)``, ``("refused", r|None)`` or
        ``("pending", r)``.

        With ``allow_multiple_devices: false`` one device at a time is in on a link (the ISV guide:
        "can be used once concurrently", R§2): a second device takes the place and the first is
        out (``registrant.bumped``). ⚠ Which of the two sessions Zoom keeps is undocumented.
        """
        with self.lock:
            registrant = next((r for r in meeting.registrants if r.token == token), None)
            if registrant is None or registrant.status in ("cancelled", "denied", "deleted"):
                return "refused", registrant
            if registrant.status == "pending":
                return "pending", registrant
            if not meeting.settings.get("allow_multiple_devices", True) and registrant.device != device:
                if registrant.device:
                    registrant.bumped.append(registrant.device)
                registrant.device = device
            return "joined", registrant

    def was_bumped(self, registrant: Registrant, device: str) -> bool:
        """This device was in on the link until another device took its place."""
        with self.lock:
            return device in registrant.bumped and registrant.device != device

    # -- faults and the call log ------------------------------------------------------------

    def add_fault(self, spec: dict) -> Fault:
        """Queue a fault from the control API's JSON."""
        fault = parse_fault(spec)
        with self.lock:
            self.faults.append(fault)
        return fault

    def list_faults(self) -> list[dict]:
        """The faults still queued, as the control API shows them."""
        with self.lock:
            return [fault.as_json() for fault in self.faults]

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching the request, spending one of its ``times``."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def record_call(self, call: dict) -> None:
        """Append one request/response summary to the call log."""
        with self.lock:
            self.call_log.append(call)

    def calls(self, path_prefix: str | None = None, method: str | None = None) -> list[dict]:
        """The call log, oldest first, optionally filtered by path prefix and method."""
        with self.lock:
            return [
                call for call in self.call_log
                if (not path_prefix or call["path"].startswith(path_prefix))
                and (not method or call["method"] == method.upper())
            ]

    def clear_calls(self) -> None:
        """Empty the call log."""
        with self.lock:
            self.call_log.clear()


def _check_user_values(values: dict) -> None:
    """Reject a non-integer plan ``type`` or an unknown ``timezone`` (§2 allows unknown type values)."""
    if "type" in values and (not isinstance(values["type"], int) or isinstance(values["type"], bool)):
        raise ValueError("type must be an integer (1 Basic, 2 Licensed, …)")
    if "timezone" in values:
        _zone(values["timezone"])


def _zone(name: str) -> ZoneInfo:
    """Return the IANA zone or raise ``ValueError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}") from None


def _random_password() -> str:
    """A 6-character passcode, as Zoom generates when passcodes are required (§3)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(6))


def _numeric_password() -> str:
    return "".join(secrets.choice(string.digits) for _ in range(6))


def _apply_waiting_room(settings: dict) -> None:
    """§3: ``waiting_room: true`` disables ``join_before_host``."""
    if settings.get("waiting_room"):
        settings["join_before_host"] = False


def _meeting_fields(body: object, *, default_timezone: str) -> dict:
    """Validate a create/update body roughly as Zoom does; return the normalised fields.

    Raises 400 code 300 with Zoom's ``errors`` list (§3 "General error shape").
    """
    if not isinstance(body, dict):
        raise api_error(400, 300, "Request Body should be a valid JSON object.")
    errors: list[dict] = []
    fields: dict = {}

    def invalid(name: str) -> None:
        errors.append({"field": name, "message": "Invalid field."})

    for name, limit in (("topic", 200), ("agenda", 2000)):  # §3: topic ≤ 200, agenda ≤ 2000
        if name in body:
            value = body[name]
            if isinstance(value, str) and len(value) <= limit:
                fields[name] = value
            else:
                invalid(name)
    if "type" in body:
        if body["type"] in (1, 2, 3, 8) and not isinstance(body["type"], bool):
            fields["type"] = body["type"]
        else:
            invalid("type")
    if "duration" in body:
        duration = body["duration"]
        if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0:
            fields["duration"] = duration
        else:
            invalid("duration")
    zone_name = body.get("timezone", default_timezone)
    try:
        zone = _zone(zone_name) if isinstance(zone_name, str) else None
    except ValueError:
        zone = None
    if zone is None:
        invalid("timezone")
    elif "timezone" in body:
        fields["timezone"] = zone_name
    if "start_time" in body:
        start = _parse_start_time(body["start_time"], zone)
        if start is None:
            invalid("start_time")
        else:
            fields["start_time"] = start
    if "password" in body:
        if isinstance(body["password"], str) and _PASSWORD_RE.fullmatch(body["password"]):
            fields["password"] = body["password"]
        else:
            invalid("password")
    if "settings" in body:
        settings = body["settings"]
        if not isinstance(settings, dict):
            invalid("settings")
        else:
            for name, allowed in _SETTINGS_ENUMS.items():
                if name in settings and (settings[name] not in allowed or isinstance(settings[name], bool)):
                    invalid(f"settings.{name}")
            for name in _SETTINGS_BOOLEANS:
                if name in settings and not isinstance(settings[name], bool):
                    invalid(f"settings.{name}")
            fields["settings"] = dict(settings)
    if errors:
        raise api_error(400, 300, "Validation Failed.", errors)
    return fields


def _registrant_fields(body: object) -> dict:
    """Validate a registrant body (R§2: ``email`` ≤ 128 and ``first_name`` ≤ 64 required, ``last_name`` ≤ 64)."""
    if not isinstance(body, dict):
        raise api_error(400, 300, "Request Body should be a valid JSON object.")
    errors = []
    for name, limit, required in (("email", 128, True), ("first_name", 64, True), ("last_name", 64, False)):
        value = body.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            errors.append({"field": name, "message": "Invalid field."})
    if not errors and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", body["email"]):
        errors.append({"field": "email", "message": "Invalid field."})
    if errors:
        raise api_error(400, 300, "Validation Failed.", errors)
    return body


def _parse_start_time(value: object, zone: ZoneInfo | None) -> datetime | None:
    """§3: ``yyyy-MM-ddTHH:mm:ssZ`` is GMT; without ``Z`` it is local time in ``timezone``."""
    if not isinstance(value, str) or not _START_TIME_RE.fullmatch(value):
        return None
    try:
        naive = datetime.strptime(value.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    if value.endswith("Z"):
        return naive.replace(tzinfo=UTC)
    if zone is None:
        return None
    return naive.replace(tzinfo=zone).astimezone(UTC)
