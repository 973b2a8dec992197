"""Absolute URLs for emails and OAuth redirects, built from ``APP_BASE_URL``.

Emails are rendered by workers outside any request, so links cannot come from the request's
host; they always use the configured public base URL.
"""
from flask import current_app


def external_url(endpoint: str, **values) -> str:
    """``APP_BASE_URL`` + the path of ``endpoint`` (works inside and outside a request)."""
    adapter = current_app.url_map.bind("localhost")
    path = adapter.build(endpoint, values)
    return current_app.config["APP_BASE_URL"].rstrip("/") + path
