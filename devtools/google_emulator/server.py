"""Run the Google emulator on 127.0.0.1 in a background thread, and drive it from Python.

``GoogleEmulatorServer`` is what tests and dev tooling use::

    with GoogleEmulatorServer() as google:
        code = google.authorize_code_for("free@gmail.test", redirect_uri=..., state=..., code_challenge=...,
                                         scope="openid email https://www.googleapis.com/auth/calendar.events.owned")
        ...  # point GOOGLE_TOKEN_URL at google.token_url, GOOGLE_CALENDAR_BASE_URL at google.calendar_url

Every helper calls the emulator's HTTP control API (``/_emulator/...``), so the same calls work
against an emulator running in another process (``python -m devtools.google_emulator``).
"""

from __future__ import annotations

from urllib.parse import quote

from devtools.zoom_emulator.server import ServerThread

from .app import create_emulator_app

DEFAULT_SCOPE = "openid email https://www.googleapis.com/auth/calendar.events.owned"


class GoogleEmulatorServer(ServerThread):
    """The Google emulator in a background thread, with helpers over its control API.

    :param settings: passed to :func:`create_emulator_app` (``client_id``, ``client_secret``,
        ``redirect_uris``, ``access_token_ttl``).
    """

    def __init__(self, *, port: int = 0, quiet: bool = True, **settings: object):
        super().__init__(create_emulator_app(**settings), port=port, quiet=quiet)
        state = self.app.extensions["google_emulator"]
        self.client_id: str = state.client_id
        self.client_secret: str = state.client_secret

    @property
    def calendar_url(self) -> str:
        """``GOOGLE_CALENDAR_BASE_URL`` (Google: ``https://www.googleapis.com/calendar/v3``)."""
        return self.url + "/calendar/v3"

    @property
    def authorize_url(self) -> str:
        """``GOOGLE_AUTHORIZE_URL`` (Google: ``https://accounts.google.com/o/oauth2/v2/auth``)."""
        return self.url + "/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        """``GOOGLE_TOKEN_URL`` (Google: ``https://oauth2.googleapis.com/token``)."""
        return self.url + "/token"

    @property
    def revoke_url(self) -> str:
        """``GOOGLE_REVOKE_URL`` (Google: ``https://oauth2.googleapis.com/revoke``)."""
        return self.url + "/revoke"

    # -- state and config -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget consents, tokens, events, faults, calls and config changes."""
        self._control("POST", "reset")

    def config(self) -> dict:
        """Current config (token TTL, clock, timeout sleep, conference modes, test users)."""
        return self._control("GET", "config")

    def configure(self, **values: object) -> dict:
        """Set ``access_token_ttl``, ``advance_seconds``, ``timeout_seconds``, ``conference_pending_polls``,
        ``conference_failure``."""
        return self._control("PATCH", "config", json=values)

    def set_access_token_ttl(self, seconds: float) -> None:
        """Make newly issued access tokens live ``seconds`` (Google: 3599)."""
        self.configure(access_token_ttl=seconds)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (codes and access tokens expire by it)."""
        self.configure(advance_seconds=seconds)

    def set_conference_pending(self, polls: int) -> None:
        """New Meet conferences answer ``pending`` on insert and on the next ``polls`` gets, then ``success``
        (0: ``success`` at once)."""
        self.configure(conference_pending_polls=polls)

    def set_conference_failure(self, on: bool = True) -> None:
        """New Meet conferences end in ``failure`` (no entry points, no ``hangoutLink``)."""
        self.configure(conference_failure=on)

    # -- users and OAuth --------------------------------------------------------------------

    def authorize_code_for(self, email: str, *, redirect_uri: str, state: str = "", code_challenge: str = "",
                           scope: str = DEFAULT_SCOPE, access_type: str = "offline", prompt: str = "consent",
                           granted_scopes: list[str] | None = None, code_challenge_method: str = "S256",
                           client_id: str | None = None, nonce: str = "") -> str:
        """Consent as ``email`` without a browser and return the authorization code.

        :param granted_scopes: the non-identity scopes the user leaves ticked (default: all asked);
            identity scopes (``openid``, ``email``, ``profile``) are always granted.
        """
        return self._control("POST", "authorize", json={
            "email": email, "client_id": client_id or self.client_id, "redirect_uri": redirect_uri,
            "state": state, "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method if code_challenge else "",
            "scope": scope, "access_type": access_type, "prompt": prompt, "granted_scopes": granted_scopes,
            "nonce": nonce,
        })["code"]

    def grants(self, email: str) -> list[dict]:
        """The user's grants: ``client_id``, ``scopes``, ``has_refresh_token``, ``revoked`` (no token values)."""
        return self._control("GET", f"users/{quote(email)}/grants")

    def revoke_grants(self, email: str) -> int:
        """The user removed the app's access in their Google Account; returns how many grants died."""
        return self._control("DELETE", f"users/{quote(email)}/grants")["revoked"]

    # -- calendar ---------------------------------------------------------------------------

    def events(self, email: str) -> list[dict]:
        """Every event on the user's primary calendar, cancelled included, as the API shows them
        (plus ``sendUpdates``: the value each write sent); reading them does not poll conferences."""
        return self._control("GET", f"users/{quote(email)}/events")

    def cancel_event_out_of_band(self, email: str, event_id: str) -> dict:
        """The host deleted the event in Google Calendar (our app was not told)."""
        return self._control("DELETE", f"users/{quote(email)}/events/{quote(event_id)}")

    # -- faults and the request log -----------------------------------------------------------

    def inject_fault(self, operation: str, kind: str, times: int | None = 1, *, retry_after: float | None = None,
                     seconds: float | None = None, status: int = 502) -> dict:
        """Queue a fault for ``operation`` (``token``, ``revoke``, ``insert``, ``get``, ``patch``, ``delete``).

        :param kind: ``401``, ``403_rate``, ``403_user_rate``, ``403_quota``, ``429``, ``404``, ``410``,
            ``500``, ``503``, ``timeout`` (sleep ``seconds``, default the config's ``timeout_seconds``,
            then perform the operation), ``html`` (``status`` 200 or 502), ``empty``, ``bad_json``.
        :param times: how many requests it affects; ``None`` for all until cleared.
        :param retry_after: the ``Retry-After`` header of a ``429``, seconds.
        """
        return self._control("POST", "faults", json={
            "operation": operation, "kind": kind, "times": times, "retry_after": retry_after,
            "seconds": seconds, "status": status,
        })

    def faults(self) -> list[dict]:
        """Faults still queued (with their remaining ``times``)."""
        return self._control("GET", "faults")

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._control("DELETE", "faults")

    def calls(self, path_prefix: str | None = None, method: str | None = None) -> list[dict]:
        """The request log: ``operation``, ``method``, ``path``, ``query``, ``json``, ``form``, ``auth_scheme``,
        ``status``, ``timestamp``; token and secret values are ``[redacted]``."""
        params = {key: value for key, value in (("path_prefix", path_prefix), ("method", method)) if value}
        return self._control("GET", "calls", params=params)

    def clear_calls(self) -> None:
        """Empty the request log."""
        self._control("DELETE", "calls")
