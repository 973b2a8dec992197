"""Secrets and logs (issue 16): no published secret in production, no token in any log, no page
in a cache, and the database and Redis's dump readable by their own user only.

The access log is gunicorn's own, written by a real gunicorn (``gunicorn.conf.py``, as
``Procfile.production`` runs it) serving the test database; Redis is the real server started by
``devtools.redis_server`` as ``make run`` starts it.
"""
import hashlib
import hmac
import io
import json
import logging
import mailbox
import os
import re
import shlex
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy import create_engine, text

from app import create_app
from app.auth.accounts import make_reset_token
from app.extensions import db
from app.mail import outbox
from app.queue import get_queue
from config import ProductionConfig
from devtools.zoom_emulator.state import DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_SECRET_TOKEN
from tests.conftest import body_text, free_port, wait_until
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
#: Zoom's own addresses, as the README's production recipe sets them.
REAL_ZOOM = {"ZOOM_OAUTH_BASE_URL": "https://zoom.us", "ZOOM_API_BASE_URL": "https://api.zoom.us/v2"}
#: The emulator's sandbox app secrets: published in this repository, so anyone can sign with them.
PUBLISHED_CLIENT_SECRET, PUBLISHED_WEBHOOK_TOKEN = DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_SECRET_TOKEN


def zoom_signed(secret: str, body: dict) -> tuple[bytes, dict]:
    """A body and the headers Zoom signs it with (HMAC-SHA256 of ``v0:<timestamp>:<body>``), computed here."""
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return raw, {"x-zm-request-timestamp": timestamp, "x-zm-signature": f"v0={digest}"}


# --- 1. the emulator's published Zoom secrets never guard a real Zoom ---------------------------------

def test_the_configs_development_secrets_are_the_emulators_published_ones():
    from config import Config, DEV_ZOOM_CLIENT_SECRET, DEV_ZOOM_WEBHOOK_SECRET_TOKEN

    assert (DEV_ZOOM_CLIENT_SECRET, DEV_ZOOM_WEBHOOK_SECRET_TOKEN) == (PUBLISHED_CLIENT_SECRET,
                                                                      PUBLISHED_WEBHOOK_TOKEN)
    if "ZOOM_WEBHOOK_SECRET_TOKEN" not in os.environ:
        assert Config.ZOOM_WEBHOOK_SECRET_TOKEN == PUBLISHED_WEBHOOK_TOKEN


def zoom_refusal(monkeypatch, **settings) -> str | None:
    """What ``ProductionConfig.check`` says about Zoom with these settings (None: nothing)."""
    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", "production-secret-" + "x" * 32)
    monkeypatch.setattr(ProductionConfig, "TOKEN_ENCRYPTION_KEY", Fernet.generate_key().decode())
    for name, value in settings.items():
        monkeypatch.setattr(ProductionConfig, name, value)
    try:
        ProductionConfig.check()
    except RuntimeError as exc:
        return str(exc) if "ZOOM" in str(exc) else None
    return None


def test_production_refuses_the_published_zoom_secrets_with_a_real_zoom(monkeypatch):
    real = {"ZOOM_CLIENT_SECRET": "the-apps-own-client-secret", "ZOOM_WEBHOOK_SECRET_TOKEN": "the-apps-own-token"}
    assert "ZOOM_CLIENT_SECRET" in zoom_refusal(monkeypatch, **REAL_ZOOM, **{
        **real, "ZOOM_CLIENT_SECRET": PUBLISHED_CLIENT_SECRET})
    assert "ZOOM_WEBHOOK_SECRET_TOKEN" in zoom_refusal(monkeypatch, **REAL_ZOOM, **{
        **real, "ZOOM_WEBHOOK_SECRET_TOKEN": PUBLISHED_WEBHOOK_TOKEN})
    assert "ZOOM_WEBHOOK_SECRET_TOKEN" in zoom_refusal(monkeypatch, **REAL_ZOOM, **{
        **real, "ZOOM_WEBHOOK_SECRET_TOKEN": ""})
    assert zoom_refusal(monkeypatch, **REAL_ZOOM, **real) is None
    # The emulator on this machine (a production-like run of the embedded setup) keeps its own.
    assert zoom_refusal(monkeypatch, ZOOM_OAUTH_BASE_URL="http://127.0.0.1:5050",
                        ZOOM_API_BASE_URL="http://localhost:5050/v2", ZOOM_CLIENT_SECRET=PUBLISHED_CLIENT_SECRET,
                        ZOOM_WEBHOOK_SECRET_TOKEN=PUBLISHED_WEBHOOK_TOKEN) is None


def test_a_production_process_with_a_real_zoom_and_no_webhook_secret_does_not_start(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("ZOOM_")}
    env.update(APP_ENV="production", SECRET_KEY="production-secret-" + "x" * 32,
               TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(), ZOOM_CLIENT_SECRET="the-apps-own-client-secret",
               DATABASE_URL=f"sqlite:///{tmp_path / 'never.db'}", **REAL_ZOOM)
    started = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode != 0
    assert "ZOOM_WEBHOOK_SECRET_TOKEN must be set" in started.stderr, started.stderr[-2000:]


def test_in_development_a_real_zoom_never_accepts_the_published_webhook_secret(app, client, monkeypatch):
    assert app.config["ZOOM_WEBHOOK_SECRET_TOKEN"] == PUBLISHED_WEBHOOK_TOKEN  # the session's emulator
    emulator = {name: app.config[name] for name in REAL_ZOOM}
    forged = {"event": "app_deauthorized", "payload": {"user_id": "victim", "account_id": "a"}}
    validation = {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}
    for name, value in REAL_ZOOM.items():
        monkeypatch.setitem(app.config, name, value)
    for body in (forged, validation):
        raw, headers = zoom_signed(PUBLISHED_WEBHOOK_TOKEN, body)
        response = client.post_raw("/zoom/webhook", data=raw, content_type="application/json", headers=headers)
        assert response.status_code == 401, body
    assert get_queue().count == 0
    # The same request to an app that talks to the emulator is the emulator's own: accepted.
    for name, value in emulator.items():
        monkeypatch.setitem(app.config, name, value)
    raw, headers = zoom_signed(PUBLISHED_WEBHOOK_TOKEN, forged)
    assert client.post_raw("/zoom/webhook", data=raw, content_type="application/json",
                           headers=headers).status_code == 204
