"""Google's error answers, as the emulator sends them.

Two shapes, because Google has two: the OAuth endpoints answer ``{"error", "error_description"}``
(facts §1), the Calendar API answers ``{"error": {"errors": [{"domain", "reason", "message"}],
"code", "message"}}`` (facts §4). Section numbers (§) refer to
``shared/reference/google-meet-facts.md``.
"""

from __future__ import annotations


class GoogleError(Exception):
    """An answer in one of Google's error shapes: HTTP status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


#: The ``status`` string Google's newer error bodies carry beside the numeric code.
_RPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ALREADY_EXISTS", 410: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}


def api_error(status: int, reason: str, message: str, *, domain: str = "global",
              top_message: str | None = None, extra: dict | None = None, headers: dict | None = None) -> GoogleError:
    """A Calendar API error (facts §4): one entry in ``errors`` naming the ``reason``."""
    entry = {"domain": domain, "reason": reason, "message": message}
    if extra:
        entry.update(extra)
    body = {"errors": [entry], "code": status, "message": top_message or message}
    if status in _RPC_STATUS:
        body["status"] = _RPC_STATUS[status]
    return GoogleError(status, {"error": body}, headers)


def auth_error() -> GoogleError:
    """401 ``authError``: no, unknown, expired or revoked access token (facts §4: refresh, then re-consent)."""
    return api_error(
        401, "authError", "Invalid Credentials",
        top_message="Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
        extra={"locationType": "header", "location": "Authorization"},
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


def insufficient_permissions() -> GoogleError:
    """403 ``insufficientPermissions`` with ``ACCESS_TOKEN_SCOPE_INSUFFICIENT`` (facts §4: relink)."""
    error = api_error(403, "insufficientPermissions", "Insufficient Permission",
                      top_message="Request had insufficient authentication scopes.")
    error.body["error"]["details"] = [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "domain": "googleapis.com",
        "metadata": {"service": "calendar-json.googleapis.com", "method": "calendar.v3.Events"},
    }]
    return error


def not_found() -> GoogleError:
    """404 ``notFound``: unknown event or calendar (facts §3)."""
    return api_error(404, "notFound", "Not Found")


def deleted() -> GoogleError:
    """410 ``deleted``: the event was already deleted (facts §3)."""
    return api_error(410, "deleted", "Resource has been deleted")


def oauth_error(status: int, error: str, description: str | None = None) -> GoogleError:
    """An OAuth endpoint error ``{"error", "error_description"}`` (facts §1)."""
    body = {"error": error}
    if description is not None:
        body["error_description"] = description
    return GoogleError(status, body)


#: Canned Calendar answers for injected faults: (status, reason, message, domain).
FAULT_ANSWERS = {
    "401": (401, "authError", "Invalid Credentials", "global"),
    "403_rate": (403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
    "403_user_rate": (403, "userRateLimitExceeded", "User Rate Limit Exceeded", "usageLimits"),
    "403_quota": (403, "quotaExceeded", "Calendar usage limits exceeded.", "usageLimits"),
    "429": (429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
    "404": (404, "notFound", "Not Found", "global"),
    "410": (410, "deleted", "Resource has been deleted", "global"),
    "500": (500, "backendError", "Backend Error", "global"),
    "503": (503, "backendError", "Service Unavailable", "global"),
}

#: The same faults on the OAuth endpoints, in their own shape: (status, error, description).
OAUTH_FAULT_ANSWERS = {
    "401": (401, "invalid_client", "Unauthorized"),
    "403_rate": (403, "rate_limit_exceeded", "Rate Limit Exceeded"),
    "403_user_rate": (403, "rate_limit_exceeded", "User Rate Limit Exceeded"),
    "403_quota": (403, "quota_exceeded", "Quota exceeded"),
    "429": (429, "rate_limit_exceeded", "Rate Limit Exceeded"),
    "404": (404, "not_found", "Not Found"),
    "410": (410, "invalid_grant", "Gone"),
    "500": (500, "internal_failure", "Backend Error"),
    "503": (503, "temporarily_unavailable", "Service Unavailable"),
}


def fault_error(kind: str, *, oauth: bool, retry_after: float | int | None = None) -> GoogleError:
    """The error an injected fault of ``kind`` answers with, in the endpoint's own shape."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if oauth:
        status, error, description = OAUTH_FAULT_ANSWERS[kind]
        return GoogleError(status, {"error": error, "error_description": description}, headers)
    if kind == "401":
        return auth_error()
    status, reason, message, domain = FAULT_ANSWERS[kind]
    return api_error(status, reason, message, domain=domain, headers=headers)
