"""The Zoom emulator as a small Flask app.

It serves, at Zoom's own paths, the parts of Zoom the product uses:

- OAuth: ``/oauth/authorize`` (a consent page listing test users), ``/oauth/token``, ``/oauth/revoke``;
- REST under ``/v2``: ``GET /users/me``, ``POST /users/me/meetings``, ``GET|PATCH|DELETE /meetings/{id}``,
  and a meeting's registrants (``POST|GET /meetings/{id}/registrants``, ``PUT …/registrants/status``,
  ``GET|DELETE …/registrants/{registrantId}``);
- the guest join page ``/j/{id}`` (a registrant's own link ``?tk=``, or the registration form when the
  meeting has registration) and the host start page ``/s/{id}``;
- a JSON control API under ``/_emulator/`` for tests and development (reset, clock, users, meetings,
  faults, the request log, webhook delivery).

Point the app's ``ZOOM_OAUTH_BASE_URL`` at the emulator root and ``ZOOM_API_BASE_URL`` at root + ``/v2``.
All state is in memory (see ``state.py``). Section numbers (§) refer to ``shared/reference/zoom-facts.md``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import secrets

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request

from . import webhooks
from .participants import participants
from .state import (
    DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_SECRET_TOKEN,
    NEXT_MIDNIGHT, PLAN_NAMES, UTC, EmulatorState, Fault, Meeting, User, ZoomError, api_error, iso,
    next_utc_midnight, oauth_error,
)

CONTROL_PREFIX = "/_emulator/"

zoom = Blueprint("zoom", __name__)
control = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX.rstrip("/"))

# Bodies of canned faults (§4 429 messages; §3 code 124 on a bad token).
_FAULT_ANSWERS = {
    "429_per_second": (
        429,
        {"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."},
        {"X-RateLimit-Type": "QPS"},
    ),
    "429_daily": (
        429,
        {
            "code": 429,
            "message": "You have reached the maximum daily rate limit for this API. Refer to the response header "
            "for details on when you can make another request.",
        },
        {"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Remaining": "0"},
    ),
    "500": (500, {"code": 500, "message": "Internal server error."}, {}),
    "503": (503, {"code": 503, "message": "Service is temporarily unavailable."}, {}),
    "401_124": (401, {"code": 124, "message": "Invalid access token."}, {}),
}
_AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")


def create_emulator_app(*, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                        webhook_secret_token: str = DEFAULT_WEBHOOK_SECRET_TOKEN,
                        redirect_uris: list[str] | None = None,
                        access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL) -> Flask:
    """Build the emulator app.

    :param redirect_uris: the app's allowed redirect URLs (exact match, §1 4709); by default any
        ``http://127.0.0.1`` or ``http://localhost`` URL is accepted.
    :param access_token_ttl: lifetime of access tokens in seconds (Zoom: one hour).
    """
    app = Flask(__name__)
    app.extensions["zoom_emulator"] = EmulatorState(
        client_id=client_id, client_secret=client_secret, webhook_secret_token=webhook_secret_token,
        redirect_uris=redirect_uris, access_token_ttl=access_token_ttl,
    )
    app.register_blueprint(zoom)
    app.register_blueprint(control)
    app.register_blueprint(participants)
    return app


def _state() -> EmulatorState:
    return current_app.extensions["zoom_emulator"]


def _root() -> str:
    """The emulator's base URL as the client reached it (Zoom's ``api_url`` and link host)."""
    return request.host_url.rstrip("/")


def _is_control() -> bool:
    return request.path.startswith(CONTROL_PREFIX)


# -- faults, latency and the request log ---------------------------------------------------------


@zoom.before_app_request
def _serve_faults() -> Response | None:
    """Apply the configured latency and the first matching fault to every non-control request."""
    if _is_control():
        return None
    state = _state()
    if state.latency_seconds:
        time.sleep(state.latency_seconds)
    fault = state.take_fault(request.method, request.path)
    if fault is None:
        return None
    if fault.kind == "timeout":
        time.sleep(fault.seconds)  # then answer normally, too late for a client with a shorter timeout
        return None
    return _fault_response(fault, state.now())


def _fault_response(fault: Fault, now: datetime) -> Response:
    if fault.kind == "xml":
        # §3: Zoom sometimes answers with XML instead of JSON (e.g. some invalid-token cases)
        code, message = (124, "Invalid access token.") if fault.status == 401 else (500, "Internal server error.")
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f"<result><code>{code}</code><message>{message}</message></result>"
        )
        return Response(body, fault.status, mimetype="text/xml")
    status, body, headers = _FAULT_ANSWERS[fault.kind]
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    if fault.retry_after is not None:
        # §4: parse Retry-After defensively: a datetime, seconds, or absent
        response.headers["Retry-After"] = (
            iso(next_utc_midnight(now)) if fault.retry_after == NEXT_MIDNIGHT else str(fault.retry_after)
        )
    return response


@zoom.after_app_request
def _log_call(response: Response) -> Response:
    """Record every non-control request with its answer's status."""
    if not _is_control():
        scheme = (request.headers.get("Authorization") or "").partition(" ")[0]
        state = _state()
        state.record_call({
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(),
            "json": request.get_json(silent=True),
            "form": request.form.to_dict() or None,
            "headers": {name: value for name, value in request.headers.items() if name.lower() != "authorization"},
            "auth_scheme": scheme or None,
            "status": response.status_code,
            "timestamp": iso(state.now()),
        })
    return response


@zoom.app_errorhandler(ZoomError)
def _zoom_error(error: ZoomError) -> Response:
    response = jsonify(error.body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


# -- OAuth (§1) ---------------------------------------------------------------------------------


def _authorize_problem(params: dict) -> str | None:
    """Why Zoom would refuse this authorization request, or ``None`` if it is acceptable."""
    state = _state()
    if params["response_type"] != "code":
        return "Unsupported response_type: only the authorization code grant is available."
    if params["client_id"] != state.client_id:
        return f"Invalid client_id: {params['client_id']} (4,702)"
    if not state.redirect_allowed(params["redirect_uri"]):
        # §1: 4709 "Redirect URI mismatch"
        return f"Invalid redirect: {params['redirect_uri']} (4,709) Redirect URI mismatch."
    if params["code_challenge_method"] not in ("", "S256", "plain"):
        return f"Invalid code_challenge_method: {params['code_challenge_method']}"
    return None


def _with_query(url: str, **params: str) -> str:
    """Append non-empty ``params`` to ``url``'s query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error_page(text: str, status: int) -> tuple[str, int]:
    return render_template("message.html", title="Error", heading="Something went wrong", text=text), status


@zoom.get("/oauth/authorize")
def authorize() -> str | tuple[str, int]:
    """The consent page: pick a test user, or deny."""
    params = {name: request.args.get(name, "") for name in _AUTHORIZE_PARAMS}
    problem = _authorize_problem(params)
    if problem:
        return _error_page(problem, 400)
    return render_template(
        "authorize.html", title="Authorize app", params=params, users=_state().list_users(), plan_names=PLAN_NAMES
    )


@zoom.post("/oauth/authorize")
def authorize_decision() -> Response | tuple[str, int]:
    """Redirect back with ``code`` and ``state``, or with ``error=access_denied``."""
    params = {name: request.form.get(name, "") for name in _AUTHORIZE_PARAMS}
    problem = _authorize_problem(params)
    if problem:
        return _error_page(problem, 400)
    if "deny" in request.form:
        return redirect(_with_query(params["redirect_uri"], error="access_denied", state=params["state"]))
    try:
        code = _state().issue_code(
            request.form.get("user", ""), params["client_id"], params["redirect_uri"],
            params["code_challenge"], params["code_challenge_method"],
        )
    except KeyError:
        return _error_page("Unknown test user.", 400)
    return redirect(_with_query(params["redirect_uri"], code=code, state=params["state"]))


def _basic_client() -> str:
    """Check ``Authorization: Basic base64(client_id:client_secret)`` and return the client id."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not _state().client_ok(auth.username, auth.password):
        raise oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
    return auth.username


@zoom.post("/oauth/token")
def token() -> Response:
    """Exchange a code (with PKCE) or rotate a refresh token; parameters in query or form (§1)."""
    client_id = _basic_client()
    params = request.values
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        tokens = _state().exchange_code(
            client_id, params.get("code"), params.get("redirect_uri"), params.get("code_verifier")
        )
    elif grant_type == "refresh_token":
        tokens = _state().refresh(client_id, params.get("refresh_token"))
    else:
        raise oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
    return jsonify({**tokens, "api_url": _root()})


@zoom.post("/oauth/revoke")
def revoke() -> Response:
    """Revoke the grant behind ``?token=`` (access and refresh tokens die)."""
    _state().revoke(_basic_client(), request.values.get("token"))
    return jsonify({"status": "success"})


# -- REST API (§2, §3) ------------------------------------------------------------------------------


def _api_user(user_id: str) -> User:
    """Authenticate the Bearer token; ``{userId}`` must be ``me`` or the token's own user."""
    user = _state().authenticate(request.headers.get("Authorization"))
    if user_id not in ("me", user.id, user.email):
        raise api_error(404, 1001, f"User does not exist: {user_id}.")
    return user


@zoom.get("/v2/users/<user_id>")
def get_user(user_id: str) -> Response:
    """``GET /users/me``: the user's profile, plan ``type`` included."""
    return jsonify(_api_user(user_id).as_zoom(_root()))


@zoom.post("/v2/users/<user_id>/meetings")
def create_meeting(user_id: str) -> tuple[Response, int]:
    """``POST /users/me/meetings``: 201 with the meeting; counts toward the 100/day budget."""
    user = _api_user(user_id)
    state = _state()
    state.count_meeting_write(user)
    meeting = state.create_meeting(user, request.get_json(silent=True))
    return jsonify(state.meeting_json(meeting, _root())), 201


@zoom.get("/v2/users/<user_id>/meetings")
def list_user_meetings(user_id: str) -> Response:
    """``GET /users/me/meetings``: the user's live scheduled meetings (one page, as ``meetings``)."""
    user = _api_user(user_id)
    state = _state()
    live = [m for m in state.list_meetings() if m.host_email == user.email and not m.deleted]
    items = [{key: record[key] for key in ("uuid", "id", "host_id", "topic", "type", "start_time", "duration",
                                           "timezone", "agenda", "created_at", "join_url")}
             for record in (state.meeting_json(m, _root()) for m in live)]
    return jsonify({"page_size": 300, "total_records": len(items), "next_page_token": "", "meetings": items})


@zoom.get("/v2/meetings/<meeting_id>")
def get_meeting(meeting_id: str) -> Response:
    """``GET /meetings/{id}``: the meeting with a fresh ``start_url``."""
    state = _state()
    meeting = state.own_meeting(state.authenticate(request.headers.get("Authorization")), meeting_id)
    return jsonify(state.meeting_json(meeting, _root()))


@zoom.patch("/v2/meetings/<meeting_id>")
def update_meeting(meeting_id: str) -> Response:
    """``PATCH /meetings/{id}``: 204 with no body; counts toward the 100/day budget."""
    state = _state()
    user = state.authenticate(request.headers.get("Authorization"))
    state.count_meeting_write(user)
    state.update_meeting(user, meeting_id, request.get_json(silent=True))
    return Response(status=204)


@zoom.delete("/v2/meetings/<meeting_id>")
def delete_meeting(meeting_id: str) -> Response:
    """``DELETE /meetings/{id}``: 204, or 404/3001, 400/3002, 400/3007."""
    state = _state()
    state.delete_meeting(state.authenticate(request.headers.get("Authorization")), meeting_id)
    return Response(status=204)


@zoom.post("/v2/meetings/<meeting_id>/registrants")
def add_registrant(meeting_id: str) -> tuple[Response, int]:
    """``POST /meetings/{id}/registrants`` (meetingRegistrantCreate): 201 with the registrant's join_url."""
    state = _state()
    meeting, registrant = state.add_registrant(
        state.authenticate(request.headers.get("Authorization")), meeting_id, request.get_json(silent=True))
    return jsonify(state.created_registrant_json(meeting, registrant, _root())), 201


@zoom.get("/v2/meetings/<meeting_id>/registrants")
def list_registrants(meeting_id: str) -> Response:
    """``GET /meetings/{id}/registrants`` (meetingRegistrants): ``status`` (approved), ``page_size`` (30),
    ``next_page_token``."""
    state = _state()
    page_size = request.args.get("page_size", "30")
    if not page_size.isdigit():
        raise api_error(400, 300, "page_size must be an integer.")
    page, total, token = state.list_registrants(
        state.authenticate(request.headers.get("Authorization")), meeting_id, request.args.get("status", "approved"),
        int(page_size), request.args.get("next_page_token", ""))
    return jsonify({"page_count": -(-total // int(page_size)) if total else 0, "page_size": int(page_size),
                    "total_records": total, "next_page_token": token,
                    "registrants": [state.registrant_json(r, _root()) for r in page]})


@zoom.put("/v2/meetings/<meeting_id>/registrants/status")
def registrant_status(meeting_id: str) -> Response:
    """``PUT /meetings/{id}/registrants/status`` (meetingRegistrantStatus): 204."""
    state = _state()
    state.update_registrant_status(state.authenticate(request.headers.get("Authorization")), meeting_id,
                                   request.get_json(silent=True))
    return Response(status=204)


@zoom.get("/v2/meetings/<meeting_id>/registrants/<registrant_id>")
def get_registrant(meeting_id: str, registrant_id: str) -> Response:
    """``GET /meetings/{id}/registrants/{registrantId}`` (meetingRegistrantGet)."""
    state = _state()
    registrant = state.get_registrant(state.authenticate(request.headers.get("Authorization")), meeting_id,
                                      registrant_id)
    return jsonify(state.registrant_json(registrant, _root()))


@zoom.delete("/v2/meetings/<meeting_id>/registrants/<registrant_id>")
def delete_registrant(meeting_id: str, registrant_id: str) -> Response:
    """``DELETE /meetings/{id}/registrants/{registrantId}`` (meetingregistrantdelete): 204."""
    state = _state()
    state.delete_registrant(state.authenticate(request.headers.get("Authorization")), meeting_id, registrant_id)
    return Response(status=204)


# -- join and start pages -----------------------------------------------------------------------------

#: The cookie that tells one browser (a "device") from another on a registrant link.
DEVICE_COOKIE = "zoom_device"


def _page_meeting(meeting_id: int) -> Meeting | None:
    """The live meeting behind a join/start link, or ``None`` if deleted or unknown."""
    try:
        meeting = _state().meeting(meeting_id)
    except KeyError:
        return None
    return None if meeting.deleted else meeting


@zoom.get("/j/<int:meeting_id>")
def join_page(meeting_id: int) -> str | tuple[str, int] | Response:
    """The guest's join page: the topic if the link is live and its passcode right.

    A registrant's own link (``?tk=``) is refused once cancelled; with ``allow_multiple_devices:
    false`` a second browser on it pushes the first out. The meeting's plain link leads to the
    registration form when the meeting has registration (R§1).
    """
    meeting = _page_meeting(meeting_id)
    if meeting is None:
        return _error_page("This meeting link is invalid (3,001).", 404)
    if "tk" in request.args:
        return _registrant_join(meeting, request.args["tk"])
    if request.args.get("pwd") != meeting.encrypted_password:
        return _error_page("Wrong or missing meeting passcode.", 403)
    if meeting.with_registration:
        return render_template("register.html", title=meeting.topic, meeting=meeting, pwd=request.args["pwd"])
    return render_template("meeting.html", title=meeting.topic, meeting=meeting, role="guest")


def _registrant_join(meeting: Meeting, token: str) -> str | tuple[str, int] | Response:
    device = request.cookies.get(DEVICE_COOKIE) or secrets.token_urlsafe(12)
    state = _state()
    with state.lock:
        registrant = next((r for r in meeting.registrants if r.token == token), None)
        if registrant is not None and state.was_bumped(registrant, device):
            page = _error_page("You were removed: this registration link joined the meeting on another device.", 409)
            return _with_device(page, device)
        outcome, registrant = state.join_with_token(meeting, token, device)
    if outcome == "refused":
        page = _error_page("This registration is no longer valid (cancelled or unknown). "
                           "Ask the host for a new link.", 403)
    elif outcome == "pending":
        page = _error_page("Your registration is waiting for the host's approval.", 403)
    else:
        page = render_template("meeting.html", title=meeting.topic, meeting=meeting, role="guest",
                               registrant=registrant)
    return _with_device(page, device)


def _with_device(page: str | tuple[str, int], device: str) -> Response:
    response = current_app.make_response(page)
    response.set_cookie(DEVICE_COOKIE, device, httponly=True, samesite="Lax")
    return response


@zoom.post("/j/<int:meeting_id>/register")
def register(meeting_id: int) -> Response | tuple[str, int]:
    """The registration form of a meeting's plain link: register, then go to one's own link."""
    meeting = _page_meeting(meeting_id)
    if meeting is None:
        return _error_page("This meeting link is invalid (3,001).", 404)
    if request.form.get("pwd") != meeting.encrypted_password:
        return _error_page("Wrong or missing meeting passcode.", 403)
    state = _state()
    try:
        _, registrant = state.add_registrant(state.user(meeting.host_email), str(meeting_id), {
            "first_name": request.form.get("first_name", ""), "email": request.form.get("email", "")})
    except ZoomError as error:
        return _error_page(f"Registration failed: {error.body.get('message')}", 400)
    if registrant.status != "approved":
        return _error_page("Your registration is waiting for the host's approval.", 202)
    return redirect(state.registrant_join_url(registrant, _root()))


@zoom.get("/s/<int:meeting_id>")
def start_page(meeting_id: int) -> str | tuple[str, int]:
    """The host's start page; a ``zak`` older than two hours has expired (§3)."""
    meeting = _page_meeting(meeting_id)
    if meeting is None:
        return _error_page("This meeting link is invalid (3,001).", 404)
    zak = _state().zak_state(meeting_id, request.args.get("zak"))
    if zak == "expired":
        return _error_page("This start link has expired. Get a fresh start_url from the API.", 403)
    if zak == "invalid":
        return _error_page("This start link is invalid.", 403)
    return render_template("meeting.html", title=meeting.topic, meeting=meeting, role="host")


# -- control API -------------------------------------------------------------------------------------


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


@control.errorhandler(ValueError)
@control.errorhandler(TypeError)
def _bad_control_request(error: Exception) -> tuple[Response, int]:
    return jsonify({"error": str(error)}), 400


@control.errorhandler(KeyError)
def _control_not_found(error: KeyError) -> tuple[Response, int]:
    return jsonify({"error": f"not found: {error.args[0]}"}), 404


def _meeting_record(meeting: Meeting) -> dict:
    """A stored meeting for the control API (internal status, ``deleted`` flag, every registrant with
    its ``id``, ``email``, ``status`` and own ``join_url``: the attendance helpers read ``registrant_id``s here)."""
    record = asdict(meeting)
    record["start_time"] = iso(meeting.start_time)
    record["created_at"] = iso(meeting.created_at)
    record["registrants"] = [
        {**asdict(r), "create_time": iso(r.create_time), "join_url": _state().registrant_join_url(r, _root())}
        for r in meeting.registrants]
    return record


@control.post("/reset")
def reset() -> Response:
    """Forget everything (users, grants, meetings, counters, faults, calls, config)."""
    _state().reset()
    return jsonify(_state().config())


@control.get("/config")
def get_config() -> Response:
    """Current config: client id, redirect URIs, token TTL, clock, latency."""
    return jsonify(_state().config())


@control.patch("/config")
def set_config() -> Response:
    """Set ``access_token_ttl``, ``now`` (ISO or null), ``advance_seconds`` or ``latency_seconds``."""
    _state().configure(_body())
    return jsonify(_state().config())


@control.get("/users")
def list_users() -> Response:
    """All test users in the ``GET /users/me`` shape."""
    return jsonify([user.as_zoom(_root()) for user in _state().list_users()])


@control.post("/users")
def add_user() -> tuple[Response, int]:
    """Add a user: ``email`` and optional ``type``, ``first_name``, ``last_name``, ``timezone``."""
    body = _body()
    if not body.get("email"):
        raise ValueError("email is required")
    user = _state().add_user(**body)
    return jsonify(user.as_zoom(_root())), 201


@control.get("/users/<email>")
def get_user_record(email: str) -> Response:
    """One test user in the ``GET /users/me`` shape."""
    return jsonify(_state().user(email).as_zoom(_root()))


@control.patch("/users/<email>")
def update_user(email: str) -> Response:
    """Change a user's plan ``type`` (1 Basic, 2 Licensed, …), names or timezone."""
    return jsonify(_state().update_user(email, _body()).as_zoom(_root()))


@control.post("/authorize")
def authorize_for() -> Response:
    """Consent on behalf of ``email`` without the browser; returns the code and the redirect URL."""
    body = _body()
    params = {name: str(body.get(name) or "") for name in _AUTHORIZE_PARAMS}
    params["response_type"] = "code"
    params["client_id"] = params["client_id"] or _state().client_id
    problem = _authorize_problem(params)
    if problem:
        raise ValueError(problem)
    code = _state().issue_code(
        body.get("email", ""), params["client_id"], params["redirect_uri"],
        params["code_challenge"], params["code_challenge_method"],
    )
    redirect_url = _with_query(params["redirect_uri"], code=code, state=params["state"])
    return jsonify({"code": code, "redirect_url": redirect_url})


@control.get("/meetings")
def list_meetings() -> Response:
    """Every meeting, deleted ones included, with its internal status."""
    return jsonify([_meeting_record(meeting) for meeting in _state().list_meetings()])


@control.delete("/meetings/<int:meeting_id>")
def delete_meeting_out_of_band(meeting_id: int) -> Response:
    """The host deletes the meeting on zoom.us: the API answers 404/3001 from now on."""
    return jsonify(_meeting_record(_state().delete_out_of_band(meeting_id)))


@control.patch("/meetings/<int:meeting_id>")
def set_meeting_status(meeting_id: int) -> Response:
    """Set ``status`` to ``waiting``, ``started`` or ``ended``."""
    return jsonify(_meeting_record(_state().set_meeting_status(meeting_id, _body().get("status"))))


@control.get("/calls")
def calls() -> Response:
    """The request log, filtered by ``?path_prefix=`` and ``?method=``."""
    return jsonify(_state().calls(request.args.get("path_prefix"), request.args.get("method")))


@control.delete("/calls")
def clear_calls() -> Response:
    """Empty the request log."""
    _state().clear_calls()
    return jsonify([])


@control.get("/faults")
def list_faults() -> Response:
    """Faults still queued."""
    return jsonify(_state().list_faults())


@control.post("/faults")
def add_fault() -> tuple[Response, int]:
    """Queue a fault: ``kind``, ``path`` (regex), ``method``, ``times``, ``retry_after``, ``status``, ``seconds``."""
    return jsonify(_state().add_fault(_body()).as_json()), 201


@control.delete("/faults")
def clear_faults() -> Response:
    """Drop every queued fault."""
    _state().clear_faults()
    return jsonify([])


@control.post("/webhooks/send")
def send_webhook() -> Response:
    """Sign and POST a webhook to ``target_url``; return the app's answer and what was sent.

    Without ``payload`` the emulator builds one from its state and applies the event to itself:
    ``app_deauthorized`` needs ``email`` (that user's grants die), ``meeting.deleted`` needs
    ``meeting_id`` (the meeting is deleted), ``endpoint.url_validation`` needs nothing.
    Options: ``secret_token``, ``timestamp`` (override, seconds), ``corrupt_signature``.
    """
    body = _body()
    state = _state()
    event, payload = body.get("event"), body.get("payload")
    if not event or not body.get("target_url"):
        raise ValueError("event and target_url are required")
    # Webhooks carry the real time: the receiving app checks the timestamp against its own clock.
    when = datetime.now(UTC)
    if payload is None:
        if event == "app_deauthorized":
            user = state.user(body.get("email", ""))
            state.deauthorize(user.email, state.client_id)
            payload = webhooks.app_deauthorized_payload(user, state.client_id, when)
        elif event == "meeting.deleted":
            meeting = state.delete_out_of_band(int(body.get("meeting_id") or 0))
            payload = webhooks.meeting_deleted_payload(meeting, state.user(meeting.host_email))
        elif event == "endpoint.url_validation":
            payload = webhooks.url_validation_payload()
        else:
            raise ValueError(f"no builder for {event}: pass a payload")
    timestamp = body.get("timestamp")
    raw_body, headers = webhooks.signed_request(
        event, payload, body.get("secret_token") or state.webhook_secret_token, when,
        timestamp=None if timestamp is None else str(timestamp),
        corrupt_signature=bool(body.get("corrupt_signature")),
    )
    result = webhooks.deliver(body["target_url"], raw_body, headers)
    return jsonify({**result, "sent": {"headers": headers, "body": raw_body.decode()}})
