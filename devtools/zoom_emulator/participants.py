"""Control API: play participants joining and leaving a meeting (signed attendance webhooks).

Every route signs the events with the emulator's webhook secret (``webhooks.signed_request``) and
POSTs them to ``target_url``, as Zoom would, and answers with what the app said and how long it
took. The emulator's state is only read (the meeting and its host); nothing is stored here, so a
test keeps the ``participant`` dicts it gets back to make the same person leave later.

- ``POST /_emulator/participants/join``  ``{target_url, meeting_id, user_name, email?, registrant_id?,
  zoom_user_id?, host?, at?}`` → a new stay (new ``participant_uuid``/``user_id``) joins; with
  ``participant`` (as an earlier answer gave it) that stay's join is sent (again, or after its leave);
- ``POST /_emulator/participants/leave`` ``{target_url, meeting_id, participant, at?, leave_reason?}``;
- ``POST /_emulator/participants/ended``  ``{target_url, meeting_id, start_time?, end_time?}``;
- ``POST /_emulator/participants/burst``  ``{target_url, meeting_id, people | count, stay_minutes?,
  gap_minutes?, duplicates?, early_leaves?, workers?}``: every person joins, leaves and rejoins
  (three events each, the second stay left open), sent at once from a thread pool; ``duplicates``
  events are sent again (re-signed with another timestamp, as Zoom's retries are) and
  ``early_leaves`` leaves are sent before their joins.

``retry: true`` signs a single event as Zoom's retry of it would be (another timestamp, so it
passes the app's replay guard). Times (``at``, ``start_time``, ``end_time``) are ISO 8601; by default "now" (real time, since the
app checks the signature's timestamp against its own clock).
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import requests
from flask import Blueprint, Response, current_app, jsonify, request

from . import webhooks
from .state import UTC, EmulatorState

#: Under the emulator's control prefix (``/_emulator/``), like the other control routes.
participants = Blueprint("participants", __name__, url_prefix="/_emulator/participants")

JOINED, LEFT, ENDED = "meeting.participant_joined", "meeting.participant_left", "meeting.ended"


def _state() -> EmulatorState:
    return current_app.extensions["zoom_emulator"]


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    for name in ("target_url", "meeting_id"):
        if not body.get(name):
            raise ValueError(f"{name} is required")
    return body


def _moment(value, default: datetime) -> datetime:
    if not value:
        return default
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@participants.errorhandler(ValueError)
@participants.errorhandler(TypeError)
def _bad_request(error: Exception) -> tuple[Response, int]:
    return jsonify({"error": str(error)}), 400


@participants.errorhandler(KeyError)
def _not_found(error: KeyError) -> tuple[Response, int]:
    return jsonify({"error": f"not found: {error.args[0]}"}), 404


def _meeting_and_host(meeting_id):
    state = _state()
    meeting = state.meeting(int(meeting_id))
    return meeting, state.user(meeting.host_email)


#: A retry of an event is signed this many seconds earlier than now: another signature than the
#: original's (the app's replay guard stops only exact copies), as Zoom's retries minutes later have.
RETRY_SKEW = -60


def _skew(body: dict) -> int:
    return RETRY_SKEW if body.get("retry") else 0


def _send(target_url: str, event: str, payload: dict, when: datetime, *, session=None, skew: int = 0,
          secret: str | None = None) -> dict:
    """Sign (timestamp: now, plus ``skew`` seconds) and POST one event; its answer and what was sent.

    :param secret: the webhook secret token (read from the state when not given: threads have no app context).
    """
    raw_body, headers = webhooks.signed_request(event, payload, secret or _state().webhook_secret_token, when,
                                                timestamp=str(int(time.time()) + skew))
    return {**webhooks.deliver(target_url, raw_body, headers, session=session), "event": event,
            "sent": {"headers": headers, "body": raw_body.decode()}}


@participants.post("/join")
def join() -> Response:
    """A new stay of one person starts; answers the app's reply and the ``participant`` to leave with."""
    body = _body()
    meeting, host = _meeting_and_host(body["meeting_id"])
    if body.get("participant"):  # this stay's join again (a retry, or after its leave: out of order)
        person = dict(body["participant"])
    elif body.get("host"):  # the host joins signed in: ``id`` is their Zoom user id
        person = webhooks.new_participant(body.get("user_name") or f"{host.first_name} {host.last_name}",
                                          email=host.email, zoom_user_id=host.id)
    else:
        person = webhooks.new_participant(body["user_name"], email=body.get("email", ""),
                                          registrant_id=body.get("registrant_id", ""),
                                          zoom_user_id=body.get("zoom_user_id", ""))
    when = _moment(body.get("at"), datetime.now(UTC))
    payload = webhooks.participant_payload(meeting, host, host.account_id, person, joined=True, at=when)
    return jsonify({**_send(body["target_url"], JOINED, payload, when, skew=_skew(body)), "participant": person})


@participants.post("/leave")
def leave() -> Response:
    """The stay ``participant`` (as ``/join`` returned it) ends."""
    body = _body()
    meeting, host = _meeting_and_host(body["meeting_id"])
    when = _moment(body.get("at"), datetime.now(UTC))
    payload = webhooks.participant_payload(meeting, host, host.account_id, dict(body["participant"]), joined=False,
                                           at=when, leave_reason=body.get("leave_reason") or "left the meeting")
    return jsonify(_send(body["target_url"], LEFT, payload, when, skew=_skew(body)))


@participants.post("/ended")
def ended() -> Response:
    """The meeting ends (``end_time``, by default now) after starting at ``start_time`` (its scheduled start)."""
    body = _body()
    meeting, host = _meeting_and_host(body["meeting_id"])
    end = _moment(body.get("end_time"), datetime.now(UTC))
    payload = webhooks.meeting_ended_payload(meeting, host, _moment(body.get("start_time"), meeting.start_time), end)
    return jsonify(_send(body["target_url"], ENDED, payload, end, skew=_skew(body)))


@participants.post("/burst")
def burst() -> Response:
    """Many people join, leave and rejoin at once: about three events a person, sent concurrently.

    Person ``i`` joins at ``start`` (the meeting's start, or ``start_time``) + ``i`` seconds,
    leaves ``stay_minutes`` later and rejoins ``gap_minutes`` after that (a new stay, left open).
    ``people`` gives each person's ``user_name``/``email``/``registrant_id``; else ``count``
    people named 「参加者 1」…. Returns every request's answer (``status_code``, ``seconds``), the
    slowest and the 95th-percentile answer, and the plan (who was in when) for checking.
    """
    body = _body()
    meeting, host = _meeting_and_host(body["meeting_id"])
    people = body.get("people") or [{"user_name": f"参加者 {i + 1}"} for i in range(int(body.get("count", 100)))]
    start = _moment(body.get("start_time"), meeting.start_time)
    stay, gap = timedelta(minutes=float(body.get("stay_minutes", 20))), timedelta(minutes=float(body.get("gap_minutes", 5)))
    shuffle = random.Random(body.get("seed", 21))
    events, plan = [], []
    for i, who in enumerate(people):
        first = webhooks.new_participant(who["user_name"], email=who.get("email", ""),
                                         registrant_id=who.get("registrant_id", ""))
        second = webhooks.new_participant(who["user_name"], email=who.get("email", ""),  # a rejoin: new ids
                                          registrant_id=who.get("registrant_id", ""))
        joined = start + timedelta(seconds=i)
        rejoined = joined + stay + gap
        leave = (LEFT, webhooks.participant_payload(meeting, host, host.account_id, first, joined=False,
                                                    at=joined + stay), joined + stay)
        join = (JOINED, webhooks.participant_payload(meeting, host, host.account_id, first, joined=True,
                                                     at=joined), joined)
        rejoin = (JOINED, webhooks.participant_payload(meeting, host, host.account_id, second, joined=True,
                                                       at=rejoined), rejoined)
        events += [join, leave, rejoin]
        plan.append({"user_name": who["user_name"], "stays": [
            {"participant_uuid": first["participant_uuid"], "join_time": webhooks.iso(joined),
             "leave_time": webhooks.iso(joined + stay)},
            {"participant_uuid": second["participant_uuid"], "join_time": webhooks.iso(rejoined), "leave_time": None}]})
    # Leaves sent before their joins: swap the first ``early_leaves`` pairs.
    for n in range(min(int(body.get("early_leaves", 0)), len(people))):
        events[3 * n], events[3 * n + 1] = events[3 * n + 1], events[3 * n]
    sends = [(event, payload, when, 0) for event, payload, when in events]
    # Zoom's retries of an event: the same body, another timestamp (a minute earlier never meets an original's).
    sends += [(event, payload, when, RETRY_SKEW)
              for event, payload, when in shuffle.sample(events, min(int(body.get("duplicates", 0)), len(events)))]
    workers, secret = max(1, min(int(body.get("workers", 16)), 64)), _state().webhook_secret_token
    with requests.Session() as session, ThreadPoolExecutor(workers) as pool:
        adapter = requests.adapters.HTTPAdapter(pool_connections=workers, pool_maxsize=workers)
        session.mount("http://", adapter)
        answers = list(pool.map(lambda item: _send(body["target_url"], item[0], item[1], item[2],
                                                   session=session, skew=item[3], secret=secret), sends))
    seconds = sorted(a["seconds"] for a in answers)
    return jsonify({
        "sent": len(answers),
        "answers": [{"event": a["event"], "status_code": a["status_code"], "seconds": a["seconds"],
                     "error": a["error"]} for a in answers],
        "max_seconds": seconds[-1] if seconds else 0.0,
        "p95_seconds": seconds[max(0, int(len(seconds) * 0.95 + 0.5) - 1)] if seconds else 0.0,
        "plan": plan,
    })
