"""The emulator's JSON control API under ``/_emulator/``: what a test does to Google "from outside".

A user consenting without a browser, a host deleting an event in Google Calendar, a user removing
the app's access, slow Meet conferences, faults, the clock and the request log. ``server.py``
wraps each route in a Python method, so the same calls work against a separate process.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .app import CONTROL_PREFIX, authorize_problem, emulator_state, granted_scopes, with_query

control = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX.rstrip("/"))


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


@control.post("/reset")
def reset() -> Response:
    """Forget consents, tokens, events, faults, calls and config changes."""
    emulator_state().reset()
    return jsonify(emulator_state().config())


@control.get("/config")
def get_config() -> Response:
    """Client id, redirect URIs, token TTL, clock, timeout sleep, conference modes, test users."""
    return jsonify(emulator_state().config())


@control.patch("/config")
def set_config() -> Response:
    """Set ``access_token_ttl``, ``advance_seconds``, ``timeout_seconds``, ``conference_pending_polls``,
    ``conference_failure``."""
    emulator_state().configure(_body())
    return jsonify(emulator_state().config())


@control.post("/authorize")
def authorize_for() -> Response:
    """Consent as ``email`` without the browser, optionally to fewer scopes (``granted_scopes``)."""
    body = _body()
    params = {name: str(body.get(name) or "") for name in (
        "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
        "access_type", "prompt", "nonce")}
    params["response_type"] = "code"
    params["client_id"] = params["client_id"] or emulator_state().client_id
    if params["code_challenge"] and not params["code_challenge_method"]:
        params["code_challenge_method"] = "S256"
    problem = authorize_problem(params)
    if problem:
        raise ValueError(f"{problem[0]}: {problem[1]}")
    scopes = granted_scopes(params["scope"], body.get("granted_scopes"))
    code = emulator_state().issue_code(body.get("email", ""), params, scopes)
    return jsonify({"code": code, "scope": " ".join(scopes),
                    "redirect_url": with_query(params["redirect_uri"], code=code, state=params["state"])})


@control.get("/users/<email>/grants")
def grants(email: str) -> Response:
    """The user's grants: client, scopes, whether a refresh token was issued, revoked (no token values)."""
    return jsonify(emulator_state().grants_of(email))


@control.delete("/users/<email>/grants")
def revoke_grants(email: str) -> Response:
    """The user removed the app's access in their Google Account: every token dies."""
    return jsonify({"revoked": emulator_state().revoke_grants(email)})


@control.get("/users/<email>/events")
def events(email: str) -> Response:
    """Every event of the user's primary calendar, cancelled included, plus each write's ``sendUpdates``."""
    return jsonify(emulator_state().calendar.records(email))


@control.delete("/users/<email>/events/<event_id>")
def cancel_event(email: str, event_id: str) -> Response:
    """The host deleted the event in Google Calendar: ``get`` now shows ``cancelled``."""
    return jsonify(emulator_state().calendar.cancel_out_of_band(email, event_id).as_google())


@control.get("/calls")
def calls() -> Response:
    """The request log, filtered by ``?path_prefix=`` and ``?method=``."""
    return jsonify(emulator_state().calls(request.args.get("path_prefix"), request.args.get("method")))


@control.delete("/calls")
def clear_calls() -> Response:
    """Empty the request log."""
    emulator_state().clear_calls()
    return jsonify([])


@control.get("/faults")
def list_faults() -> Response:
    """Faults still queued."""
    return jsonify(emulator_state().list_faults())


@control.post("/faults")
def add_fault() -> tuple[Response, int]:
    """Queue a fault: ``operation``, ``kind``, ``times``, ``retry_after``, ``seconds``, ``status``."""
    return jsonify(emulator_state().add_fault(_body()).as_json()), 201


@control.delete("/faults")
def clear_faults() -> Response:
    """Drop every queued fault."""
    emulator_state().clear_faults()
    return jsonify([])
