"""Check Zoom API requests and responses against Zoom's own OpenAPI specs.

The specs live beside the repository in ``../shared/zoom-openapi`` and are read at test time,
never copied into the project. Operations are looked up in the users spec first
(``GET /users/{userId}``), then in the meetings spec (meetings and everything else).

- :func:`validate_request` is **strict**: unknown body fields and unknown query parameters are
  errors, and ``date-time`` values must be RFC 3339 (so ``start_time`` needs ``Z`` or an offset).
- :func:`validate_response` is **lenient**: extra fields are allowed, because the 2023 spec lags
  Zoom (zoom-facts §8: ``pstn_password``, ``encrypted_password`` on create, ``dynamic_host_key``…).
  Error statuses the spec lists without a body, and Zoom-wide ones (401 code 124, 429, 5xx), are
  checked against Zoom's general error shape ``{"code", "message"[, "errors"]}`` (zoom-facts §3).
- :func:`validate_webhook` checks a webhook body against the marketplace webhooks spec.
- :func:`operation_id` names the operation a request matches (the registrant endpoints, e.g.
  ``meetingRegistrantCreate``, are told apart from ``…/registrants/status`` this way).

Each raises :class:`ContractError` (an ``AssertionError``) listing every mismatch, or
:class:`SpecUnavailable` when the specs are absent; call :func:`spec_dir` first to skip cleanly::

    if spec_dir() is None:
        pytest.skip(SKIP_REASON)
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, OAS31Validator, oas30_format_checker

SPEC_FILES = {
    "users": "zoom-users-api.endpoints.2026-02-07.json",
    "meetings": "ZoomMeetingAPISpec.2023-10-25.json",
    "webhooks": "zoom-marketplace-webhooks.2026-02-07.json",
}
SKIP_REASON = (
    "Zoom OpenAPI specs not found in ../shared/zoom-openapi (beside the repository): "
    "contract checks against Zoom's specs are skipped"
)
#: Statuses every Zoom endpoint may answer though no operation lists them (zoom-facts §3, §4).
ZOOM_WIDE_STATUSES = frozenset({401, 403, 429, 500, 502, 503, 504})
#: zoom-facts §3 "General error shape".
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
}
_API_PREFIX = "/v2"  # the specs' server URL is https://api.zoom.us/v2
_MAX_MESSAGES = 20


class ContractError(AssertionError):
    """A request, response or webhook does not match Zoom's spec."""


class SpecUnavailable(RuntimeError):
    """The specs are not beside the repository."""


def spec_dir() -> Path | None:
    """Return ``<repo>/../shared/zoom-openapi`` if all three specs are there, else ``None``."""
    directory = Path(__file__).resolve().parents[2].parent / "shared" / "zoom-openapi"
    if all((directory / name).is_file() for name in SPEC_FILES.values()):
        return directory
    return None


@lru_cache(maxsize=None)
def _spec(name: str) -> dict:
    directory = spec_dir()
    if directory is None:
        raise SpecUnavailable(SKIP_REASON)
    return json.loads((directory / SPEC_FILES[name]).read_text(encoding="utf-8"))


def _format_checker() -> FormatChecker:
    """jsonschema's format checks (``date-time`` per RFC 3339, ``email``) plus OpenAPI's int32/int64."""
    checker = FormatChecker()
    checker.checkers.update(oas30_format_checker.checkers)
    return checker


_FORMATS = _format_checker()


@lru_cache(maxsize=None)
def _routes(spec_name: str) -> list[tuple[re.Pattern, int, str]]:
    """Path templates of a spec as (regex capturing the parameters, number of literal segments, template)."""
    routes = []
    for template in _spec(spec_name)["paths"]:
        pattern = re.sub(r"\\{[^/]+?\\}", "([^/]+)", re.escape(template))
        literals = sum(1 for segment in template.split("/") if segment and not segment.startswith("{"))
        routes.append((re.compile(pattern + "$"), literals, template))
    return routes


def _operation(method: str, url: str) -> tuple[str, str, dict, dict[str, str], dict[str, str]]:
    """Find the operation for ``method url``: (spec name, template, operation, path params, query)."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith(_API_PREFIX + "/"):
        path = path[len(_API_PREFIX):]
    best = None
    for spec_name in ("users", "meetings"):
        for regex, literals, template in _routes(spec_name):
            operation = _spec(spec_name)["paths"][template].get(method.lower())
            match = regex.match(path) if operation else None
            if match and (best is None or literals > best[0]):
                best = (literals, spec_name, template, operation, match.groups())
    if best is None:
        raise ContractError(f"{method.upper()} {path}: no such operation in Zoom's specs")
    _, spec_name, template, operation, values = best
    names = re.findall(r"{([^/]+?)}", template)
    return spec_name, template, operation, dict(zip(names, values)), dict(parse_qsl(parts.query))


def operation_id(method: str, path: str) -> str:
    """The spec's ``operationId`` of a request (``meetingRegistrantCreate`` …): which operation a
    request or response was checked against.

    :raises ContractError: no operation in the specs matches.
    """
    return _operation(method, path)[2]["operationId"]


def _errors(schema: dict, instance: object, where: str, validator_class: type = OAS30Validator) -> list[str]:
    validator = validator_class(schema, format_checker=_FORMATS)
    found = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{where}{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}" for error in found]


def _raise_if(messages: list[str], title: str) -> None:
    if messages:
        shown = messages[:_MAX_MESSAGES] + ([f"… and {len(messages) - _MAX_MESSAGES} more"]
                                            if len(messages) > _MAX_MESSAGES else [])
        raise ContractError(title + "\n  " + "\n  ".join(shown))


def _closed(schema: object) -> object:
    """A copy of ``schema`` where objects with listed properties accept no other property."""
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    if "properties" in closed:
        closed["properties"] = {name: _closed(sub) for name, sub in closed["properties"].items()}
        closed.setdefault("additionalProperties", False)
    if isinstance(closed.get("items"), dict):
        closed["items"] = _closed(closed["items"])
    return closed


def _coerce(value: str, schema: dict) -> object:
    """Turn a path or query string into the type its schema declares, when it can."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def validate_request(method: str, path: str, json_body: object = None, query: dict | None = None) -> None:
    """Check a request strictly: path and query parameters, and the JSON body (no unknown fields).

    :param path: ``/v2/users/me/meetings``, ``/users/me/meetings`` or a full URL (its query is used
        when ``query`` is not given).
    :raises ContractError: listing every mismatch.
    """
    spec_name, template, operation, path_params, url_query = _operation(method, path)
    title = f"{method.upper()} {template} request does not match the {spec_name} spec:"
    query = url_query if query is None else {key: str(value) for key, value in query.items()}
    messages: list[str] = []
    declared = {(param["in"], param["name"]): param for param in operation.get("parameters", [])}
    for name, value in path_params.items():
        schema = declared[("path", name)].get("schema", {})
        messages += _errors(schema, _coerce(value, schema), f"path {name}")
    for name, value in query.items():
        param = declared.get(("query", name))
        if param is None:
            messages.append(f"query {name}: not a parameter of this operation")
        else:
            schema = param.get("schema", {})
            messages += _errors(schema, _coerce(value, schema), f"query {name}")
    for (where, name), param in declared.items():
        if where == "query" and param.get("required") and name not in query:
            messages.append(f"query {name}: required")
    body = operation.get("requestBody")
    if body is None:
        if json_body is not None:
            messages.append("body: this operation takes no body")
    elif json_body is None:
        if body.get("required"):
            messages.append("body: required")
    else:
        schema = body["content"]["application/json"]["schema"]
        messages += _errors(_closed(schema), json_body, "body")
    _raise_if(messages, title)


def validate_response(method: str, path: str, status: int, json_body: object = None) -> None:
    """Check a response leniently: its status is documented and its body fits (extra fields allowed).

    :param json_body: the parsed JSON body, or ``None`` for an empty (or non-JSON) body.
    :raises ContractError: listing every mismatch.
    """
    spec_name, template, operation, _, _ = _operation(method, path)
    title = f"{method.upper()} {template} → {status} does not match the {spec_name} spec:"
    documented = operation.get("responses", {}).get(str(status))
    if documented is None and status not in ZOOM_WIDE_STATUSES:
        _raise_if([f"status {status} is not documented (documented: {', '.join(operation['responses'])})"], title)
    schema = ((documented or {}).get("content") or {}).get("application/json", {}).get("schema")
    messages: list[str] = []
    if schema is not None:
        if json_body is None:
            messages.append("body: missing")
        else:
            messages += _errors(schema, json_body, "body")
    elif status < 300:
        if json_body is not None:
            messages.append(f"body: a {status} answer has no body")
    elif json_body is not None:
        messages += _errors(ERROR_SCHEMA, json_body, "error body")
    _raise_if(messages, title)


def validate_webhook(event: str, json_body: object) -> None:
    """Check a webhook body (``{event, event_ts, payload}``) against the marketplace webhooks spec.

    :raises ContractError: if the event is not in the spec or the body does not fit.
    """
    operation = _spec("webhooks")["webhooks"].get(event, {}).get("post")
    if operation is None:
        raise ContractError(f"webhook {event}: not in the marketplace webhooks spec")
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    _raise_if(_errors(schema, json_body, "body", OAS31Validator), f"webhook {event} does not match the spec:")
