"""In-memory state of the Google emulator: users, consents, codes, tokens, faults and the call log.

Everything lives in one :class:`EmulatorState` behind one re-entrant lock, so the threaded server
can answer many requests at once. The OAuth rules live here (single-use codes, PKCE, when a refresh
token is issued, no rotation, revocation of the whole grant); the Calendar rules are in
``events.py``. ``app.py`` only turns HTTP into calls on these objects. Section numbers (§) refer
to ``shared/reference/google-meet-facts.md``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from .errors import oauth_error
from .faults import Fault, parse_fault
from .identity import SCOPE_PREFIX, TEST_USERS, pkce_s256, sign_jwt

UTC = timezone.utc

DEFAULT_CLIENT_ID = "sandbox-client-id.apps.googleusercontent.test"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_ACCESS_TOKEN_TTL = 3599  # §1: expires_in in Google's samples
CODE_TTL = timedelta(minutes=10)
ISSUER = "https://accounts.google.com"
CALL_LOG_SIZE = 10_000

@dataclass
class AuthCode:
    """A code handed to ``redirect_uri``: single use, ten minutes, bound to client, URI and PKCE."""

    client_id: str
    email: str
    redirect_uri: str
    scopes: tuple[str, ...]  # granted, which may be fewer than asked
    code_challenge: str
    code_challenge_method: str
    access_type: str
    prompt: str
    nonce: str
    issued_at: datetime
    used: bool = False


@dataclass
class Grant:
    """One code exchange: its scopes, its refresh token (if any) and the access tokens it minted."""

    client_id: str
    email: str
    scopes: tuple[str, ...]
    refresh_token: str | None
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


class EmulatorState:
    """Everything the emulator remembers, behind one re-entrant lock."""

    def __init__(self, *, client_id: str, client_secret: str, redirect_uris: list[str] | None,
                 access_token_ttl: float):
        from .events import CalendarStore  # events imports this module's helpers

        self._calendar_store = CalendarStore
        self.lock = threading.RLock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris) if redirect_uris else None
        self.initial_access_token_ttl = access_token_ttl
        self.users = {user.email: user for user in TEST_USERS}
        self.reset()

    # -- lifecycle, clock and config -------------------------------------------------------

    def reset(self) -> None:
        """Forget consents, codes, tokens, events, faults, calls and config changes."""
        with self.lock:
            self.codes: dict[str, AuthCode] = {}
            self.grants: list[Grant] = []
            self.consented: set[tuple[str, str]] = set()  # (email, client_id) that consented before
            self.access_tokens: dict[str, tuple[Grant, datetime]] = {}
            self.refresh_tokens: dict[str, Grant] = {}
            self.faults: list[Fault] = []
            self.call_log: deque[dict] = deque(maxlen=CALL_LOG_SIZE)
            self.access_token_ttl = self.initial_access_token_ttl
            self.clock_offset = timedelta(0)
            self.timeout_seconds = 2.0
            self.calendar = self._calendar_store(self)

    def now(self) -> datetime:
        """The emulator's clock: real UTC shifted by the control API's offset."""
        return datetime.now(UTC) + self.clock_offset

    def configure(self, values: dict) -> None:
        """Apply control-API config: ``access_token_ttl``, ``advance_seconds``, ``timeout_seconds``,
        ``conference_pending_polls``, ``conference_failure``."""
        with self.lock:
            if "access_token_ttl" in values:
                ttl = values["access_token_ttl"]
                if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
                    raise ValueError("access_token_ttl must be a positive number of seconds")
                self.access_token_ttl = ttl
            if "advance_seconds" in values:
                self.clock_offset += timedelta(seconds=float(values["advance_seconds"]))
            if "timeout_seconds" in values:
                self.timeout_seconds = float(values["timeout_seconds"])
            if "conference_pending_polls" in values:
                polls = values["conference_pending_polls"]
                if not isinstance(polls, int) or isinstance(polls, bool) or polls < 0:
                    raise ValueError("conference_pending_polls must be a non-negative integer")
                self.calendar.pending_polls = polls
            if "conference_failure" in values:
                self.calendar.failure = bool(values["conference_failure"])

    def config(self) -> dict:
        """The current control-API config."""
        with self.lock:
            return {
                "client_id": self.client_id,
                "redirect_uris": self.redirect_uris,
                "access_token_ttl": self.access_token_ttl,
                "now": self.now().isoformat(),
                "timeout_seconds": self.timeout_seconds,
                "conference_pending_polls": self.calendar.pending_polls,
                "conference_failure": self.calendar.failure,
                "users": [{"email": u.email, "hd": u.hd, "sub": u.sub} for u in self.users.values()],
            }

    # -- OAuth: authorization (§1) ----------------------------------------------------------

    def client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        """Whether the client credentials are the registered ones (constant-time compare)."""
        return client_id == self.client_id and hmac.compare_digest(client_secret or "", self.client_secret)

    def redirect_allowed(self, uri: str) -> bool:
        """Exact match against the registered URIs; by default any loopback http URL (§1: exact match)."""
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and not parts.fragment

    def issue_code(self, email: str, params: dict, granted_scopes: list[str]) -> str:
        """Record the user's consent to ``granted_scopes`` and mint a code; ``KeyError`` if no such user."""
        user = self.users[email]
        with self.lock:
            code = "4/0A" + secrets.token_urlsafe(48)
            self.codes[code] = AuthCode(
                client_id=params["client_id"], email=user.email, redirect_uri=params["redirect_uri"],
                scopes=tuple(granted_scopes), code_challenge=params.get("code_challenge", ""),
                code_challenge_method=params.get("code_challenge_method") or "plain",
                access_type=params.get("access_type") or "online", prompt=params.get("prompt", ""),
                nonce=params.get("nonce", ""), issued_at=self.now(),
            )
            return code

    # -- OAuth: tokens (§1) -----------------------------------------------------------------

    def exchange_code(self, client_id: str, code: str | None, redirect_uri: str | None,
                      code_verifier: str | None) -> dict:
        """``grant_type=authorization_code``: check code, URI and PKCE; return the token response."""
        bad_request = oauth_error(400, "invalid_grant", "Bad Request")
        with self.lock:
            found = self.codes.get(code or "")
            if found is None or found.client_id != client_id or found.used:
                raise bad_request
            if self.now() - found.issued_at > CODE_TTL or redirect_uri != found.redirect_uri:
                raise bad_request
            if found.code_challenge:
                if not code_verifier:
                    raise oauth_error(400, "invalid_grant", "Missing code verifier.")
                expected = pkce_s256(code_verifier) if found.code_challenge_method == "S256" else code_verifier
                if not hmac.compare_digest(expected, found.code_challenge):
                    raise oauth_error(400, "invalid_grant", "Invalid code verifier.")
            elif code_verifier:
                raise oauth_error(400, "invalid_grant", "code_verifier or verifier is not needed.")
            found.used = True
            key = (found.email, client_id)
            first_consent = key not in self.consented
            self.consented.add(key)
            offline = found.access_type == "offline"
            refresh = offline and (first_consent or "consent" in found.prompt.split())
            grant = Grant(client_id, found.email, found.scopes,
                          "1//0" + secrets.token_urlsafe(64) if refresh else None)
            self.grants.append(grant)
            if grant.refresh_token:
                self.refresh_tokens[grant.refresh_token] = grant
            response = self._access_token_response(grant)
            if grant.refresh_token:
                response["refresh_token"] = grant.refresh_token
            if "openid" in found.scopes:
                response["id_token"] = self._id_token(grant, found.nonce)
            return response

    def refresh(self, client_id: str, refresh_token: str | None) -> dict:
        """``grant_type=refresh_token``: a new access token and **no** new refresh token (§1: no rotation)."""
        with self.lock:
            grant = self.refresh_tokens.get(refresh_token or "")
            if grant is None or grant.revoked or grant.client_id != client_id:
                raise oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return self._access_token_response(grant)

    def _access_token_response(self, grant: Grant) -> dict:
        token = "ya29.a0" + secrets.token_urlsafe(96)
        grant.access_tokens.add(token)
        self.access_tokens[token] = (grant, self.now() + timedelta(seconds=self.access_token_ttl))
        return {
            "access_token": token,
            "expires_in": int(self.access_token_ttl) if float(self.access_token_ttl).is_integer()
            else self.access_token_ttl,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
        }

    def _id_token(self, grant: Grant, nonce: str) -> str:
        user = self.users[grant.email]
        issued = int(self.now().timestamp())
        claims = {"iss": ISSUER, "azp": grant.client_id, "aud": grant.client_id, "sub": user.sub}
        if SCOPE_PREFIX + "userinfo.email" in grant.scopes:
            claims.update(email=user.email, email_verified=True)
        if user.hd:
            claims["hd"] = user.hd
        if SCOPE_PREFIX + "userinfo.profile" in grant.scopes:
            claims["name"] = user.name
        if nonce:
            claims["nonce"] = nonce
        claims.update(iat=issued, exp=issued + 3600)
        return sign_jwt(claims, self.client_secret)

    def revoke(self, token: str | None) -> None:
        """Revoke the grant behind an access or refresh token: both die (§1); unknown → invalid_token."""
        with self.lock:
            found = self.access_tokens.get(token or "")
            grant = found[0] if found else self.refresh_tokens.get(token or "")
            if grant is None or grant.revoked:
                raise oauth_error(400, "invalid_token", "Token expired or revoked")
            self._revoke_all(grant.email, grant.client_id)

    def revoke_grants(self, email: str) -> int:
        """The user removed the app in their Google Account: every token of every client dies."""
        with self.lock:
            clients = {grant.client_id for grant in self.grants if grant.email == email and not grant.revoked}
            return sum(self._revoke_all(email, client_id) for client_id in clients)

    def _revoke_all(self, email: str, client_id: str) -> int:
        """Revoke every grant of ``email`` to ``client_id``; the next consent counts as the first."""
        count = 0
        for grant in self.grants:
            if grant.email == email and grant.client_id == client_id and not grant.revoked:
                grant.revoked = True
                count += 1
        self.consented.discard((email, client_id))
        return count

    def grants_of(self, email: str) -> list[dict]:
        """The control API's view of a user's grants (never the token values)."""
        with self.lock:
            return [{"client_id": g.client_id, "scopes": list(g.scopes), "has_refresh_token": bool(g.refresh_token),
                     "revoked": g.revoked, "access_tokens": len(g.access_tokens)}
                    for g in self.grants if g.email == email]

    def authenticate(self, authorization: str | None) -> Grant | None:
        """The live grant behind ``Authorization: Bearer …``, or ``None`` (then 401 authError)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self.lock:
            found = self.access_tokens.get(token.strip())
            if found is None or found[0].revoked or self.now() >= found[1]:
                return None
            return found[0]

    # -- faults and the call log ------------------------------------------------------------

    def add_fault(self, spec: dict) -> Fault:
        """Queue a fault from the control API's JSON."""
        fault = parse_fault(spec, default_seconds=self.timeout_seconds)
        with self.lock:
            self.faults.append(fault)
        return fault

    def list_faults(self) -> list[dict]:
        """The faults still queued."""
        with self.lock:
            return [fault.as_json() for fault in self.faults]

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def take_fault(self, operation: str) -> Fault | None:
        """The first fault for ``operation``, spending one of its ``times``."""
        with self.lock:
            for fault in self.faults:
                if fault.operation == operation:
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
            return [call for call in self.call_log
                    if (not path_prefix or call["path"].startswith(path_prefix))
                    and (not method or call["method"] == method.upper())]

    def clear_calls(self) -> None:
        """Empty the call log."""
        with self.lock:
            self.call_log.clear()
