"""Who the emulator's users are and what their tokens say: test accounts, scopes, PKCE, the id_token.

Kept apart from ``state.py`` because these are pure rules, with no state behind them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
#: Short names Google accepts and the full scope it grants for them.
SCOPE_ALIASES = {"email": SCOPE_PREFIX + "userinfo.email", "profile": SCOPE_PREFIX + "userinfo.profile"}
IDENTITY_SCOPES = frozenset({"openid", SCOPE_PREFIX + "userinfo.email", SCOPE_PREFIX + "userinfo.profile"})
CALENDAR_SCOPES = frozenset(SCOPE_PREFIX + name for name in (
    "calendar", "calendar.events", "calendar.events.owned", "calendar.app.created",
    "calendar.readonly", "calendar.events.readonly", "calendar.events.owned.readonly",
))
KNOWN_SCOPES = IDENTITY_SCOPES | CALENDAR_SCOPES


@dataclass(frozen=True)
class User:
    """A Google test account; ``hd`` is the Workspace domain, ``None`` for a personal account."""

    email: str
    name: str
    hd: str | None = None

    @property
    def sub(self) -> str:
        """The stable, numeric account id Google puts in ``sub`` (21 digits)."""
        digest = hashlib.sha256(("sub:" + self.email).encode()).digest()
        return str(10**20 + int.from_bytes(digest[:8], "big") % (9 * 10**20))


TEST_USERS = (
    User("free@gmail.test", "Free Personal"),
    User("teacher@school.test", "School Teacher", hd="school.test"),
)


def normalise_scopes(scope: str) -> list[str]:
    """Split a space-delimited ``scope`` and expand Google's short names (``email`` → userinfo.email)."""
    scopes = []
    for name in scope.split():
        full = SCOPE_ALIASES.get(name, name)
        if full not in scopes:
            scopes.append(full)
    return scopes


def pkce_s256(verifier: str) -> str:
    """The RFC 7636 S256 challenge: base64url, no padding, of SHA-256(verifier)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_jwt(claims: dict, secret: str) -> str:
    """An HS256 JWT signed with the client secret (Google signs RS256; clients here only decode it)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "emulator"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
