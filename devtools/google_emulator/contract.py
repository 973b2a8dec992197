"""Check Calendar API requests and responses against Google's own discovery document.

google-api-python-client ships ``googleapiclient/discovery_cache/documents/calendar.v3.json``
(facts §7); it is a dev/test dependency only, and this module reads the JSON file without importing
the client. The document is Google Discovery, not JSON Schema, so :func:`json_schema` converts it:
``$ref`` by schema name becomes a ``$ref`` into ``definitions``; ``type``, ``format``, ``items``,
``additionalProperties`` and ``enum`` carry over; a property is required when a method's id is in its
``annotations.required`` (``start``/``end`` for ``calendar.events.insert``).

- :func:`validate_request` is **strict**: unknown parameters and body fields are errors, as are the
  read-only Event fields Google rejects on writes (facts §3, I10) and a ``dateTime`` with neither an
  offset nor a ``timeZone`` (facts §3).
- :func:`validate_response` is strict too: the emulator must answer only what Google documents.
- :func:`validate_error` checks the Calendar error shape of facts §4.

Each raises :class:`ContractError` (an ``AssertionError``) listing every mismatch, or
:class:`DiscoveryUnavailable` when google-api-python-client is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft7Validator, FormatChecker

DOCUMENT = Path("discovery_cache") / "documents" / "calendar.v3.json"
SKIP_REASON = "google-api-python-client is not installed (requirements-dev.txt): no calendar.v3.json to check against"
#: facts §4: ``{"error": {"errors": [{"domain", "reason", "message"}], "code", "message"}}``.
ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["errors", "code", "message"],
        "properties": {
            "errors": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["domain", "reason", "message"],
                "properties": {name: {"type": "string"} for name in ("domain", "reason", "message")}}},
            "code": {"type": "integer"}, "message": {"type": "string"}, "status": {"type": "string"},
        },
    }},
}
_OFFSET = re.compile(r"(Z|[+-]\d\d:\d\d)$")
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", re.IGNORECASE)
_MAX_MESSAGES = 20


class ContractError(AssertionError):
    """A request or response does not match Google's discovery document."""


class DiscoveryUnavailable(RuntimeError):
    """google-api-python-client (which ships the document) is not installed."""


def document_path() -> Path | None:
    """Where calendar.v3.json is, found without importing googleapiclient; ``None`` if not installed."""
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DOCUMENT
    return path if path.is_file() else None


@lru_cache(maxsize=None)
def discovery() -> dict:
    """The Calendar v3 discovery document."""
    path = document_path()
    if path is None:
        raise DiscoveryUnavailable(SKIP_REASON)
    return json.loads(path.read_text(encoding="utf-8"))


def method(method_id: str) -> dict:
    """A method by id, e.g. ``calendar.events.insert``."""
    node = discovery()
    _, *resources, name = method_id.split(".")
    for resource in resources:
        node = node["resources"][resource]
    return node["methods"][name]


def _convert(schema: dict, method_id: str | None, closed: bool) -> dict:
    """One Discovery schema node → JSON Schema (draft 7)."""
    if "$ref" in schema:
        return {"$ref": "#/definitions/" + schema["$ref"]}
    out: dict = {}
    kind = schema.get("type")
    if kind and kind != "any":
        out["type"] = kind
    if "format" in schema and kind == "string":
        out["format"] = schema["format"]  # date, date-time; int64/uint64/byte strings stay unchecked
    if "enum" in schema:
        out["enum"] = list(schema["enum"])
    if "items" in schema:
        out["items"] = _convert(schema["items"], method_id, closed)
    if "additionalProperties" in schema:
        out["additionalProperties"] = _convert(schema["additionalProperties"], method_id, closed)
    if "properties" in schema:
        out["properties"] = {name: _convert(sub, method_id, closed) for name, sub in schema["properties"].items()}
        required = [name for name, sub in schema["properties"].items()
                    if method_id and method_id in sub.get("annotations", {}).get("required", [])]
        if required:
            out["required"] = required
        if closed:
            out.setdefault("additionalProperties", False)
    return out


@lru_cache(maxsize=None)
def json_schema(name: str, method_id: str | None = None, closed: bool = True) -> dict:
    """The named schema (e.g. ``Event``) as JSON Schema, every other schema under ``definitions``.

    :param method_id: whose ``annotations.required`` make properties required.
    :param closed: objects with listed properties accept no other property.
    """
    definitions = {key: _convert(value, method_id, closed) for key, value in discovery()["schemas"].items()}
    return {"$ref": f"#/definitions/{name}", "definitions": definitions}


def _format_checker() -> FormatChecker:
    """``date-time`` as Google takes it (RFC 3339, offset optional: a ``timeZone`` may stand in), ``date``."""
    checker = FormatChecker(formats=())
    checker.checks("date-time")(lambda value: not isinstance(value, str) or bool(_DATE_TIME.fullmatch(value)))
    checker.checks("date")(lambda value: not isinstance(value, str) or bool(re.fullmatch(r"\d{4}-\d\d-\d\d", value)))
    return checker


_FORMATS = _format_checker()


def _errors(schema: dict, instance: object, where: str) -> list[str]:
    validator = Draft7Validator(schema, format_checker=_FORMATS)
    found = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{where}{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}" for error in found]


def _raise_if(messages: list[str], title: str) -> None:
    if messages:
        extra = [f"… and {len(messages) - _MAX_MESSAGES} more"] if len(messages) > _MAX_MESSAGES else []
        raise ContractError(title + "\n  " + "\n  ".join(messages[:_MAX_MESSAGES] + extra))


def _parameter_problem(name: str, spec: dict, value: object) -> str | None:
    """Check one path/query value (a string as sent, or a Python value) against its Discovery parameter."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    kind = spec.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", text):
            return f"{name}: {text!r} is not an integer"
        number = int(text)
        if "minimum" in spec and number < int(spec["minimum"]) or "maximum" in spec and number > int(spec["maximum"]):
            return f"{name}: {number} is outside [{spec.get('minimum', '-∞')}, {spec.get('maximum', '∞')}]"
    elif kind == "boolean" and text not in ("true", "false"):
        return f"{name}: {text!r} is not true or false"
    if "enum" in spec and text not in spec["enum"]:
        return f"{name}: {text!r} is not one of {spec['enum']}"
    if "pattern" in spec and not re.fullmatch(spec["pattern"], text):
        return f"{name}: {text!r} does not match {spec['pattern']}"
    return None


def _read_only(schema_name: str) -> list[str]:
    """Top-level properties the document describes as read-only (Google rejects them on writes)."""
    properties = discovery()["schemas"][schema_name].get("properties", {})
    return [name for name, sub in properties.items() if "read-only" in sub.get("description", "").lower()]


def _event_time_problems(body: dict) -> list[str]:
    """facts §3: a ``dateTime`` needs an offset "unless a time zone is explicitly specified in timeZone"."""
    messages = []
    for name in ("start", "end", "originalStartTime"):
        value = body.get(name)
        if isinstance(value, dict) and isinstance(value.get("dateTime"), str):
            if not _OFFSET.search(value["dateTime"]) and not value.get("timeZone"):
                messages.append(f"body[{name!r}]['dateTime']: no offset and no timeZone")
    return messages


def validate_request(method_id: str, params: dict | None = None, body: object = None) -> None:
    """Check a request strictly: its path and query parameters, and its JSON body.

    :param method_id: e.g. ``calendar.events.insert``.
    :param params: path and query parameters by name (strings as sent, or Python values).
    :raises ContractError: listing every mismatch.
    """
    spec = method(method_id)
    declared = {**discovery().get("parameters", {}), **spec.get("parameters", {})}
    params = dict(params or {})
    messages = []
    for name, value in params.items():
        if name not in declared:
            messages.append(f"parameter {name}: not a parameter of {method_id}")
            continue
        problem = _parameter_problem(name, declared[name], value)
        if problem:
            messages.append("parameter " + problem)
    messages += [f"parameter {name}: required" for name, parameter in spec.get("parameters", {}).items()
                 if parameter.get("required") and name not in params]
    request = spec.get("request")
    if request is None:
        if body is not None:
            messages.append(f"body: {method_id} takes no body")
    elif body is None:
        messages.append("body: required")
    else:
        messages += _errors(json_schema(request["$ref"], method_id), body, "body")
        if isinstance(body, dict):
            messages += [f"body[{name!r}]: read-only" for name in _read_only(request["$ref"]) if name in body]
            if request["$ref"] == "Event":
                messages += _event_time_problems(body)
    _raise_if(messages, f"{method_id} request does not match the discovery document:")


def method_for(http_method: str, path: str) -> tuple[str, dict[str, str]]:
    """The method id and path parameters of a request path such as ``/calendar/v3/calendars/primary/events``."""
    service_path = "/" + discovery()["servicePath"]
    relative = path.split("?")[0].removeprefix(service_path)
    found = []

    def walk(node: dict) -> None:
        for spec in node.get("methods", {}).values():
            pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(spec["path"]))
            match = re.fullmatch(pattern, relative)
            if spec["httpMethod"] == http_method.upper() and match:
                found.append((spec["path"].count("{"), spec["id"], match.groupdict()))
        for child in node.get("resources", {}).values():
            walk(child)

    walk(discovery())
    if not found:
        raise ContractError(f"{http_method.upper()} {path}: no such method in the discovery document")
    _, method_id, path_params = min(found)  # the most literal template wins
    return method_id, path_params


def validate_call(call: dict) -> str:
    """Check one entry of the emulator's call log (``method``, ``path``, ``query``, ``json``); return its method id."""
    method_id, path_params = method_for(call["method"], call["path"])
    validate_request(method_id, {**path_params, **(call.get("query") or {})}, call.get("json"))
    return method_id


def validate_response(method_id: str, body: object) -> None:
    """Check a success body against the method's ``response`` schema (no body for ``events.delete``).

    :raises ContractError: listing every mismatch.
    """
    response = method(method_id).get("response")
    title = f"{method_id} response does not match the discovery document:"
    if response is None:
        _raise_if([] if body is None else [f"body: {method_id} answers with no body"], title)
        return
    messages = _errors(json_schema(response["$ref"]), body, "body")
    if isinstance(body, dict):
        for name in ("start", "end"):
            stamp = (body.get(name) or {}).get("dateTime")
            if isinstance(stamp, str) and not _OFFSET.search(stamp):
                messages.append(f"body[{name!r}]['dateTime']: Google answers with an offset")
    _raise_if(messages, title)


def validate_error(body: object) -> None:
    """Check an error body against the Calendar error shape (facts §4)."""
    _raise_if(_errors(ERROR_SCHEMA, body, "error body"), "error body does not match Google's error shape:")
