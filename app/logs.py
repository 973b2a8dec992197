"""Structured logs: one JSON object per line, tagged with the request id or the RQ job id.

No token is ever written to a log. The code never passes one to the logger, and URLs reach the
logs anyway (Flask's "Exception on /c/<token>", the development server's request lines,
gunicorn's access log through ``gunicorn.conf.py``): :func:`redact` masks the capability tokens
in our paths and the secret query parameters in every such line.
"""
import json
import logging
import re
import uuid

from flask import g, has_request_context, request

SECRET_WORDS = ("token", "secret", "password", "authorization")

#: The path segment right before a capability token in our URLs: /reset/<token>, /verify/<token>,
#: /c/<token>, /j/<token>, /s/<public_id>/booked/<token> (a test checks every route with a token).
TOKEN_SEGMENTS = ("reset", "verify", "c", "j", "r", "booked")
#: Query parameters that carry a secret: the OAuth ``code`` and ``state``, Zoom's ``pwd`` and ``zak``.
SECRET_PARAMETERS = ("code", "state", "pwd", "zak", "password", r"[\w.-]*token", r"[\w.-]*secret")
MASK = "[redacted]"
_END = r"""[^/?#&\s"'<>\\]+"""  # a path segment or a value: up to the next delimiter
_TOKEN_IN_PATH = re.compile(r"(/(?:%s)/)%s" % ("|".join(TOKEN_SEGMENTS), _END), re.IGNORECASE)
_SECRET_IN_QUERY = re.compile(r"((?:^|[?&;])(?:%s)=)%s" % ("|".join(SECRET_PARAMETERS), _END), re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the tokens of our URLs and secret query values replaced by ``[redacted]``.

    ``GET /c/Xy12…?code=abc HTTP/1.1`` becomes ``GET /c/[redacted]?code=[redacted] HTTP/1.1``:
    what was asked for stays readable, the credential in it does not.
    """
    return _SECRET_IN_QUERY.sub(r"\1" + MASK, _TOKEN_IN_PATH.sub(r"\1" + MASK, text))


class RedactingFilter(logging.Filter):
    """Applies :func:`redact` to a record's message and traceback (on a logger or a handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


#: One instance, so that adding it again (every ``create_app``) is a no-op.
REDACTING_FILTER = RedactingFilter()


class ContextFilter(logging.Filter):
    """Adds ``request_id`` (from X-Request-ID or generated) and ``job_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        try:
            from rq import get_current_job

            job = get_current_job()
        except Exception:  # outside a worker
            job = None
        record.job_id = job.id if job is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", "job_id", …}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info or record.exc_text:
            entry["error"] = redact(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def init_app(app) -> None:
    """JSON logs to stderr (production); request ids in and out; no token in any log line."""

    @app.before_request
    def _request_id():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if given.isascii() and 0 < len(given) <= 64 else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        if has_request_context() and g.get("request_id"):
            response.headers["X-Request-ID"] = g.request_id
        return response

    # Flask logs "Exception on <path>"; the development server logs every request line.
    for logger in (app.logger, logging.getLogger("werkzeug")):
        logger.addFilter(REDACTING_FILTER)
    if app.config.get("LOG_JSON"):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        handler.addFilter(REDACTING_FILTER)
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
