"""Run the Zoom emulator on 127.0.0.1 in a background thread, and drive it from Python.

``EmulatorServer`` is what tests and dev tooling use::

    with EmulatorServer() as zoom:
        zoom.set_user_plan("basic@zoom.test", 2)
        ...  # point ZOOM_OAUTH_BASE_URL at zoom.url, ZOOM_API_BASE_URL at zoom.url + "/v2"

Every helper calls the emulator's HTTP control API (``/_emulator/...``), so the same calls work
against an emulator running in another process (``python -m devtools.zoom_emulator``).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Self

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_emulator_app

CONTROL_TIMEOUT = 10


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip the access log."""


class ServerThread:
    """Serve a WSGI app with werkzeug (threaded) on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Flask, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True):
        self.app = app
        self.host = host
        self.port = port
        self.quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> Self:
        """Bind the port (a free one if 0) and serve in a daemon thread."""
        self._server = make_server(
            self.host, self.port, self.app, threaded=True,
            request_handler=_QuietRequestHandler if self.quiet else None,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"wsgi:{self._server.server_port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and join the thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _control(self, method: str, path: str, **kwargs: object) -> object:
        """Call the emulator's HTTP control API (``/_emulator/<path>``): the same calls drive an
        emulator in another process."""
        response = requests.request(method, f"{self.url}/_emulator/{path}", timeout=CONTROL_TIMEOUT, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path}: {response.status_code} {response.text}")
        return response.json()


class EmulatorServer(ServerThread):
    """The Zoom emulator in a background thread, with helpers over its control API.

    :param settings: passed to :func:`create_emulator_app` (``client_id``, ``client_secret``,
        ``webhook_secret_token``, ``redirect_uris``, ``access_token_ttl``).
    """

    def __init__(self, *, port: int = 0, quiet: bool = True, **settings: object):
        super().__init__(create_emulator_app(**settings), port=port, quiet=quiet)
        state = self.app.extensions["zoom_emulator"]
        self.client_id: str = state.client_id
        self.client_secret: str = state.client_secret
        self.webhook_secret_token: str = state.webhook_secret_token

    @property
    def api_url(self) -> str:
        """The REST base URL (``ZOOM_API_BASE_URL``)."""
        return self.url + "/v2"

    # -- state ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget users, grants, meetings, counters, faults, calls and config."""
        self._control("POST", "reset")

    def config(self) -> dict:
        """Current config: ``client_id``, ``redirect_uris``, ``access_token_ttl``, ``now``, ``latency_seconds``."""
        return self._control("GET", "config")

    def configure(self, **values: object) -> dict:
        """Set ``access_token_ttl``, ``now`` (ISO string or None), ``advance_seconds``, ``latency_seconds``."""
        return self._control("PATCH", "config", json=values)

    def set_access_token_ttl(self, seconds: float) -> None:
        """Make newly issued access tokens live ``seconds`` (Zoom: 3600)."""
        self.configure(access_token_ttl=seconds)

    def set_clock(self, now: datetime | None) -> None:
        """Move the emulator clock to ``now`` (aware datetime); ``None`` goes back to real UTC."""
        self.configure(now=None if now is None else now.isoformat())

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator clock forward (codes, tokens, start links and daily budgets follow it)."""
        self.configure(advance_seconds=seconds)

    # -- users and OAuth --------------------------------------------------------------------

    def users(self) -> list[dict]:
        """All test users in the ``GET /users/me`` shape."""
        return self._control("GET", "users")

    def user(self, email: str) -> dict:
        """One test user in the ``GET /users/me`` shape."""
        return self._control("GET", f"users/{email}")

    def add_user(self, email: str, type: int = 1, *, first_name: str = "Sandbox", last_name: str = "User",
                 timezone: str = "Asia/Tokyo") -> dict:
        """Add a test user (``type`` 1 Basic, 2 Licensed)."""
        return self._control("POST", "users", json={
            "email": email, "type": type, "first_name": first_name, "last_name": last_name, "timezone": timezone,
        })

    def set_user_plan(self, email: str, type: int) -> dict:
        """Change a user's plan ``type``, as when a host upgrades or downgrades (§2)."""
        return self._control("PATCH", f"users/{email}", json={"type": type})

    def authorize_code_for(self, email: str, client_id: str | None = None, redirect_uri: str = "",
                           state: str = "", code_challenge: str = "", code_challenge_method: str = "S256") -> str:
        """Consent as ``email`` without a browser and return the authorization code."""
        return self._control("POST", "authorize", json={
            "email": email, "client_id": client_id or self.client_id, "redirect_uri": redirect_uri,
            "state": state, "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method if code_challenge else "",
        })["code"]

    # -- meetings ---------------------------------------------------------------------------

    def meetings(self) -> list[dict]:
        """Every meeting, deleted ones included, with internal ``status`` and ``deleted``."""
        return self._control("GET", "meetings")

    def delete_meeting_out_of_band(self, meeting_id: int) -> dict:
        """Delete a meeting as the host would on zoom.us (no webhook is sent)."""
        return self._control("DELETE", f"meetings/{meeting_id}")

    def set_meeting_status(self, meeting_id: int, status: str) -> dict:
        """Set a meeting's status: ``waiting``, ``started`` or ``ended``."""
        return self._control("PATCH", f"meetings/{meeting_id}", json={"status": status})

    # -- faults and the request log -----------------------------------------------------------

    def inject_fault(self, kind: str, path: str = ".*", *, method: str | None = None, times: int | None = 1,
                     **options: object) -> dict:
        """Queue a fault for requests whose path (without query) the ``path`` regex finds a match in.

        :param kind: ``429_per_second``, ``429_daily``, ``500``, ``503``, ``timeout``, ``xml``, ``401_124``.
        :param times: how many matching requests it affects; ``None`` for all until cleared.
        :param options: ``retry_after`` (seconds, a literal value, ``"next_midnight"`` or None for no
            header), ``status`` (401 or 500 for ``xml``), ``seconds`` (sleep for ``timeout``).
        """
        return self._control("POST", "faults", json={
            "kind": kind, "path": path, "method": method, "times": times, **options,
        })

    def faults(self) -> list[dict]:
        """Faults still queued (with their remaining ``times``)."""
        return self._control("GET", "faults")

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._control("DELETE", "faults")

    def calls(self, path_prefix: str | None = None, method: str | None = None) -> list[dict]:
        """The request log (method, path, query, json, form, headers, auth_scheme, status, timestamp)."""
        params = {key: value for key, value in (("path_prefix", path_prefix), ("method", method)) if value}
        return self._control("GET", "calls", params=params)

    def clear_calls(self) -> None:
        """Empty the request log."""
        self._control("DELETE", "calls")

    # -- webhooks ---------------------------------------------------------------------------

    def send_webhook(self, event: str, payload: dict | None, target_url: str, secret_token: str | None = None,
                     *, email: str | None = None, meeting_id: int | None = None, timestamp: int | str | None = None,
                     corrupt_signature: bool = False) -> dict:
        """Sign and POST a webhook to ``target_url``; return ``{status_code, body, error, sent}``.

        With ``payload=None`` the emulator builds it: ``app_deauthorized`` from ``email`` (and revokes
        that user's grants), ``meeting.deleted`` from ``meeting_id`` (and deletes the meeting),
        ``endpoint.url_validation`` with a random ``plainToken``.
        """
        return self._control("POST", "webhooks/send", json={
            "event": event, "payload": payload, "target_url": target_url, "secret_token": secret_token,
            "email": email, "meeting_id": meeting_id, "timestamp": timestamp,
            "corrupt_signature": corrupt_signature,
        })
