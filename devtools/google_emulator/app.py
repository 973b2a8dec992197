"""The Google emulator as a small Flask app, at Google's own paths so only base URLs change.

- OAuth (accounts.google.com / oauth2.googleapis.com): ``GET|POST /o/oauth2/v2/auth`` (a consent
  page listing the test users), ``POST /token``, ``POST /revoke``;
- Calendar API v3 (www.googleapis.com): ``POST /calendar/v3/calendars/{calendarId}/events`` and
  ``GET|PATCH|DELETE /calendar/v3/calendars/{calendarId}/events/{eventId}``;
- a JSON control API under ``/_emulator/`` (``control.py``).

Point ``GOOGLE_AUTHORIZE_URL`` at root + ``/o/oauth2/v2/auth``, ``GOOGLE_TOKEN_URL`` at root +
``/token``, ``GOOGLE_REVOKE_URL`` at root + ``/revoke`` and ``GOOGLE_CALENDAR_BASE_URL`` at root +
``/calendar/v3``. Section numbers (§) refer to ``shared/reference/google-meet-facts.md``.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request

from .errors import GoogleError, auth_error, fault_error, insufficient_permissions, not_found, oauth_error
from .events import SEND_UPDATES, rfc3339
from .faults import ERROR_KINDS
from .identity import IDENTITY_SCOPES, KNOWN_SCOPES, SCOPE_PREFIX, User, normalise_scopes
from .state import DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorState

CONTROL_PREFIX = "/_emulator/"
AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
                    "code_challenge_method", "access_type", "prompt", "include_granted_scopes", "login_hint", "nonce")
#: §2: scopes that let a token write (and read) events on the user's own primary calendar.
WRITE_SCOPES = frozenset(SCOPE_PREFIX + name for name in ("calendar", "calendar.events", "calendar.events.owned"))
READ_SCOPES = WRITE_SCOPES | {SCOPE_PREFIX + name for name in (
    "calendar.readonly", "calendar.events.readonly", "calendar.events.owned.readonly")}
#: Flask endpoint → the operation name faults are injected by.
OPERATIONS = {"google.token": "token", "google.revoke": "revoke", "google.insert_event": "insert",
              "google.get_event": "get", "google.patch_event": "patch", "google.delete_event": "delete"}
#: Form and query fields whose values never reach the call log.
SECRET_FIELDS = frozenset({"client_secret", "code", "code_verifier", "refresh_token", "token", "access_token",
                           "assertion"})

google = Blueprint("google", __name__)


def create_emulator_app(*, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                        redirect_uris: list[str] | None = None,
                        access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL) -> Flask:
    """Build the emulator app.

    :param redirect_uris: the client's registered redirect URIs (exact match, §1); by default any
        ``http://127.0.0.1`` or ``http://localhost`` URL, so test servers on random ports work.
    """
    from .control import control

    app = Flask(__name__)
    app.extensions["google_emulator"] = EmulatorState(
        client_id=client_id, client_secret=client_secret, redirect_uris=redirect_uris,
        access_token_ttl=access_token_ttl,
    )
    app.register_blueprint(google)
    app.register_blueprint(control)
    return app


def emulator_state() -> EmulatorState:
    """The state of the app serving this request."""
    return current_app.extensions["google_emulator"]


def _is_control() -> bool:
    return request.path.startswith(CONTROL_PREFIX)


# -- faults and the request log ---------------------------------------------------------------


@google.before_app_request
def _serve_faults() -> Response | None:
    """Serve the first queued fault of this request's operation (a ``timeout`` sleeps, then answers)."""
    operation = OPERATIONS.get(request.endpoint or "")
    if operation is None:
        return None
    fault = emulator_state().take_fault(operation)
    if fault is None:
        return None
    if fault.kind == "timeout":
        time.sleep(fault.seconds)  # then perform the operation: the client gave up, Google did not
        return None
    if fault.kind in ERROR_KINDS:
        error = fault_error(fault.kind, oauth=operation in ("token", "revoke"),
                            retry_after=fault.retry_after if fault.kind == "429" else None)
        return _error_response(error)
    if fault.kind == "html":
        page = "<!DOCTYPE html><html><head><title>Error 502 (Server Error)!!1</title></head>" \
               "<body><p><b>502.</b> That’s an error.</p></body></html>"
        return Response(page, fault.status, mimetype="text/html")
    if fault.kind == "empty":
        return Response(b"", 200, mimetype="application/json")
    return Response('{\n "kind": "calendar#event",\n "id": ', 200, mimetype="application/json")  # bad_json


def _redacted(values: dict) -> dict:
    return {name: "[redacted]" if name in SECRET_FIELDS else value for name, value in values.items()}


@google.after_app_request
def _log_call(response: Response) -> Response:
    """Record every non-control request (no token or secret value is ever logged)."""
    if not _is_control():
        emulator_state().record_call({
            "operation": OPERATIONS.get(request.endpoint or ""),
            "method": request.method,
            "path": request.path,
            "query": _redacted(request.args.to_dict()),
            "json": request.get_json(silent=True) if request.is_json else None,
            "form": _redacted(request.form.to_dict()) or None,
            "auth_scheme": (request.headers.get("Authorization") or "").partition(" ")[0] or None,
            "status": response.status_code,
            "timestamp": rfc3339(emulator_state().now()),
        })
    return response


def _error_response(error: GoogleError) -> Response:
    response = jsonify(error.body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


@google.app_errorhandler(GoogleError)
def _google_error(error: GoogleError) -> Response:
    return _error_response(error)


# -- OAuth: authorize (§1) ----------------------------------------------------------------------


def authorize_problem(params: dict) -> tuple[str, str, int] | None:
    """Why Google would refuse this authorization request, as (error, description, status), or ``None``."""
    state = emulator_state()
    if params["client_id"] != state.client_id:
        return "invalid_client", "The OAuth client was not found.", 401
    if not params["redirect_uri"] or not state.redirect_allowed(params["redirect_uri"]):
        return "redirect_uri_mismatch", ("You can't sign in to this app because it doesn't comply with Google's "
                                         "OAuth 2.0 policy. redirect_uri=" + params["redirect_uri"]), 400
    if not params["response_type"]:
        return "invalid_request", "Required parameter is missing: response_type", 400
    if params["response_type"] != "code":
        return "unsupported_response_type", f"Invalid response_type: {params['response_type']}", 400
    if not params["scope"]:
        return "invalid_request", "Missing required parameter: scope", 400
    unknown = [scope for scope in normalise_scopes(params["scope"]) if scope not in KNOWN_SCOPES]
    if unknown:
        return "invalid_scope", f"Some requested scopes were invalid. {{invalid={unknown}}}", 400
    if params["code_challenge_method"] and not params["code_challenge"]:
        return "invalid_request", "Missing code challenge.", 400
    if params["code_challenge_method"] not in ("", "S256", "plain"):
        return "invalid_request", "Invalid code_challenge_method value.", 400
    if params["access_type"] not in ("", "online", "offline"):
        return "invalid_request", f"Invalid access_type: {params['access_type']}", 400
    if any(value not in ("none", "consent", "select_account") for value in params["prompt"].split()):
        return "invalid_request", f"Invalid prompt: {params['prompt']}", 400
    return None


def granted_scopes(asked: str, granted: list[str] | None) -> list[str]:
    """What the user grants: every identity scope asked, and the asked others they left ticked (§1 "check it")."""
    scopes = normalise_scopes(asked)
    if granted is None:
        return scopes
    ticked = normalise_scopes(" ".join(granted))
    stray = [scope for scope in ticked if scope not in scopes]
    if stray:
        raise ValueError(f"granted scopes were not asked for: {stray}")
    return [scope for scope in scopes if scope in IDENTITY_SCOPES or scope in ticked]


def with_query(url: str, **params: str) -> str:
    """Append non-empty ``params`` to ``url``'s query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error_page(error: str, description: str, status: int) -> tuple[str, int]:
    return render_template("error.html", error=error, description=description, status=status), status


@google.get("/o/oauth2/v2/auth")
def authorize() -> str | tuple[str, int]:
    """The consent page: one form per test user, with a checkbox per non-identity scope."""
    params = {name: request.args.get(name, "") for name in AUTHORIZE_PARAMS}
    problem = authorize_problem(params)
    if problem:
        return _error_page(*problem)
    scopes = normalise_scopes(params["scope"])
    return render_template("consent.html", params=params, users=list(emulator_state().users.values()),
                           optional=[s for s in scopes if s not in IDENTITY_SCOPES])


@google.post("/o/oauth2/v2/auth")
def authorize_decision() -> Response | tuple[str, int]:
    """Redirect back with ``code`` and ``state``, or with ``error=access_denied``."""
    params = {name: request.form.get(name, "") for name in AUTHORIZE_PARAMS}
    problem = authorize_problem(params)
    if problem:
        return _error_page(*problem)
    if "deny" in request.form:
        return redirect(with_query(params["redirect_uri"], error="access_denied", state=params["state"]))
    try:
        scopes = granted_scopes(params["scope"], request.form.getlist("granted"))
        code = emulator_state().issue_code(request.form.get("user", ""), params, scopes)
    except (KeyError, ValueError):
        return _error_page("invalid_request", "Unknown test user or scope.", 400)
    return redirect(with_query(params["redirect_uri"], code=code, state=params["state"]))


# -- OAuth: token and revoke (§1) -------------------------------------------------------------------


def _client() -> str:
    """Authenticate the client by ``client_secret_basic`` or ``client_secret_post``; 401 ``invalid_client``."""
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        client_id, secret = unquote_plus(auth.username or ""), unquote_plus(auth.password or "")
    else:
        client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    state = emulator_state()
    if client_id != state.client_id:
        raise oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if not state.client_ok(client_id, secret):
        raise oauth_error(401, "invalid_client", "Unauthorized")
    return client_id


@google.post("/token")
def token() -> Response:
    """Exchange a code (PKCE checked) or refresh an access token (the refresh token is never rotated)."""
    client_id = _client()
    form = request.form
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        tokens = emulator_state().exchange_code(client_id, form.get("code"), form.get("redirect_uri"),
                                                form.get("code_verifier"))
    elif grant_type == "refresh_token":
        tokens = emulator_state().refresh(client_id, form.get("refresh_token"))
    elif not grant_type:
        raise oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
    else:
        raise oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    response = jsonify(tokens)
    response.headers["Cache-Control"] = "no-cache, no-store, max-age=0, must-revalidate"
    return response


@google.post("/revoke")
def revoke() -> Response:
    """Revoke an access or refresh token (``?token=`` or form); the whole grant dies (§1)."""
    emulator_state().revoke(request.values.get("token"))
    return Response(b"", 200, mimetype="application/json")


# -- Calendar API v3 (§3) -----------------------------------------------------------------------------


def _calendar_owner(calendar_id: str, scopes: frozenset[str]) -> User:
    """Authenticate the Bearer token, check its scopes, and resolve ``primary`` or the user's own email."""
    state = emulator_state()
    grant = state.authenticate(request.headers.get("Authorization"))
    if grant is None:
        raise auth_error()
    if not scopes & set(grant.scopes):
        raise insufficient_permissions()
    user = state.users[grant.email]
    if calendar_id not in ("primary", user.email):
        raise not_found()
    return user


def _query_int(name: str, low: int, high: int) -> int:
    raw = request.args.get(name, "0")
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise GoogleError(400, {"error": {"errors": [{"domain": "global", "reason": "invalidParameter",
                                                      "message": f"Invalid value '{raw}'. Values must be within "
                                                      f"the range: [{low}, {high}]", "locationType": "parameter",
                                                      "location": name}],
                                          "code": 400, "message": f"Invalid value '{raw}'."}})
    return int(raw)


def _send_updates() -> str | None:
    value = request.args.get("sendUpdates")
    if value is not None and value not in SEND_UPDATES:
        raise GoogleError(400, {"error": {"errors": [{"domain": "global", "reason": "invalidParameter",
                                                      "message": f"Invalid string value: '{value}'. Allowed values: "
                                                      "[all, externalonly, none]", "locationType": "parameter",
                                                      "location": "sendUpdates"}],
                                          "code": 400, "message": f"Invalid string value: '{value}'."}})
    return value


@google.post("/calendar/v3/calendars/<path:calendar_id>/events")
def insert_event(calendar_id: str) -> Response:
    """``events.insert``: 200 with the Event (Google answers 200, not 201)."""
    owner = _calendar_owner(calendar_id, WRITE_SCOPES)
    event = emulator_state().calendar.insert(owner, request.get_json(silent=True),
                                             version=_query_int("conferenceDataVersion", 0, 1),
                                             send_updates=_send_updates())
    return jsonify(event.as_google())


@google.get("/calendar/v3/calendars/<path:calendar_id>/events/<event_id>")
def get_event(calendar_id: str, event_id: str) -> Response:
    """``events.get``: also returns cancelled events (``status: cancelled``)."""
    owner = _calendar_owner(calendar_id, READ_SCOPES)
    return jsonify(emulator_state().calendar.get(owner, event_id).as_google())


@google.patch("/calendar/v3/calendars/<path:calendar_id>/events/<event_id>")
def patch_event(calendar_id: str, event_id: str) -> Response:
    """``events.patch``: merge, keep the conference."""
    owner = _calendar_owner(calendar_id, WRITE_SCOPES)
    event = emulator_state().calendar.patch(owner, event_id, request.get_json(silent=True),
                                            version=_query_int("conferenceDataVersion", 0, 1),
                                            send_updates=_send_updates())
    return jsonify(event.as_google())


@google.delete("/calendar/v3/calendars/<path:calendar_id>/events/<event_id>")
def delete_event(calendar_id: str, event_id: str) -> Response:
    """``events.delete``: 204 with an empty body; 410 the second time, 404 if unknown."""
    owner = _calendar_owner(calendar_id, WRITE_SCOPES)
    emulator_state().calendar.delete(owner, event_id, send_updates=_send_updates())
    return Response(status=204)
