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


def test_make_runs_app_and_google_emulator_share_the_sandbox_client():
    """``make run`` starts the Google emulator with its defaults and the app with the config's: a
    host linking Google Meet there must not meet 「invalid_client」."""
    from config import Config, DEV_GOOGLE_CLIENT_SECRET
    from devtools.google_emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    assert DEV_GOOGLE_CLIENT_SECRET == DEFAULT_CLIENT_SECRET
    if "GOOGLE_CLIENT_ID" not in os.environ:
        assert Config.GOOGLE_CLIENT_ID == DEFAULT_CLIENT_ID
    if "GOOGLE_CLIENT_SECRET" not in os.environ:
        assert Config.GOOGLE_CLIENT_SECRET == DEFAULT_CLIENT_SECRET


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


# --- 2. no token in any log ------------------------------------------------------------------------------

def test_every_route_that_takes_a_token_is_masked(app):
    from app.logs import redact

    adapter, covered = app.url_map.bind("localhost"), []
    for rule in app.url_map.iter_rules():
        if not any("token" in name for name in rule.arguments):
            continue
        values = {name: ("Tok3n-" + name if "token" in name else 7 if name.endswith("_id") else "pub")
                  for name in rule.arguments}
        line = f'"GET {adapter.build(rule.endpoint, values)} HTTP/1.1" 200 "http://h{rule.rule}"'
        assert not [v for v in values.values() if str(v).startswith("Tok3n") and v in redact(line)], \
            f"{rule.rule}: add the segment before its token to app.logs.TOKEN_SEGMENTS"
        covered.append(rule.rule)
    assert {"/c/<token>", "/j/<token>", "/reset/<token>", "/s/<public_id>/booked/<token>"} <= set(covered)


def procfile_web_command(port: int, access_log: Path, error_log: Path) -> list[str]:
    """Procfile.production's ``web:`` command, on a local port, one worker, logs into files."""
    [line] = [line for line in (ROOT / "Procfile.production").read_text().splitlines() if line.startswith("web:")]
    line = line.removeprefix("web:").replace("${WEB_CONCURRENCY:-4}", "1").replace(
        "0.0.0.0:${PORT:-8000}", f"127.0.0.1:{port}")
    command = shlex.split(line)
    assert command[0] == "gunicorn" and "${" not in line, line
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    command[command.index("--access-logfile") + 1] = str(access_log)
    return command[:-1] + ["--error-logfile", str(error_log), "--no-control-socket", command[-1]]


@pytest.fixture
def gunicorn(app, tmp_path):
    """The production web process as Procfile.production starts it, on the test database."""
    port, logs = free_port(), {"access": tmp_path / "access.log", "error": tmp_path / "error.log"}
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], REDIS_URL=app.config["REDIS_URL"],
               SECRET_KEY=app.config["SECRET_KEY"], TOKEN_ENCRYPTION_KEY=app.config["TOKEN_ENCRYPTION_KEY"],
               MAILBOX_DIR=str(tmp_path / "mailbox"), PYTHONUNBUFFERED="1")
    env.pop("APP_ENV", None)  # development config (plain http): the log lines are the same
    proc = subprocess.Popen(procfile_web_command(port, logs["access"], logs["error"]), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, logs["error"].read_text() if logs["error"].exists() else "gunicorn exited"
        try:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or its worker still starting
            return False

    try:
        wait_until(answers, timeout=30, interval=0.1)
        yield base, proc, logs
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_gunicorns_access_log_holds_no_token(app, gunicorn, make_host, make_service, make_slot, make_booking):
    base, proc, logs = gunicorn
    host = make_host()
    service = make_service(host, venue="manual_url", kind="class_event")
    booking = make_booking(make_slot(service))
    reset, code, state = make_reset_token(host), "oauth-code-Q7xw", "oauth-state-P3kz"
    secrets = {booking.cancel_token, booking.join_token, reset, code, state}
    requests_made = [
        (f"/c/{booking.cancel_token}", None),
        (f"/j/{booking.join_token}", None),
        (f"/s/{service.public_id}/booked/{booking.cancel_token}", None),
        (f"/reset/{reset}", None),
        (f"/zoom/callback?code={code}&state={state}", None),
        ("/static/app.css", f"{base}/c/{booking.cancel_token}"),  # the page's stylesheet: its Referer
        ("/favicon.ico", f"{base}/reset/{reset}"),
    ]
    statuses = []
    for path, referer in requests_made:
        response = requests.get(base + path, headers={"Referer": referer} if referer else {}, timeout=10,
                                allow_redirects=False)
        statuses.append(response.status_code)
    assert statuses[:4] == [200, 200, 200, 200], statuses  # real tokens: the pages answered
    # /healthz (the readiness probe) and every request above are in the log
    wait_until(lambda: len(logs["access"].read_text().splitlines()) >= len(requests_made) + 1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    access, error = logs["access"].read_text(), logs["error"].read_text()
    for secret in secrets:
        assert secret not in access and secret not in error, secret
    # What was asked for, and the answer, stay readable.
    for line in ('"GET /c/[redacted] HTTP/1.1" 200', '"GET /j/[redacted] HTTP/1.1" 200',
                 f'"GET /s/{service.public_id}/booked/[redacted] HTTP/1.1" 200',
                 '"GET /reset/[redacted] HTTP/1.1" 200',
                 '"GET /zoom/callback?code=[redacted]&state=[redacted] HTTP/1.1" 302',
                 '"GET /static/app.css HTTP/1.1" 200 ', f'"{base}/c/[redacted]"', f'"{base}/reset/[redacted]"'):
        assert line in access, (line, access)


def test_the_apps_own_json_logs_hold_no_token(monkeypatch, production_app):
    from app.logs import JsonFormatter

    # Alembic's fileConfig (the session's migrations) disabled the loggers that existed then.
    monkeypatch.setattr(production_app.logger, "disabled", False)
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    written = io.StringIO()
    handler.setStream(written)  # stderr, in production
    token, join, code = "cancel-Tok3n-9d2f", "join-Tok3n-a81c", "oauth-code-Zk2"
    with production_app.test_request_context(f"/c/{token}?code={code}"):
        try:
            raise RuntimeError(f"failed while reading /j/{join}?code={code}")
        except RuntimeError:
            production_app.log_exception(sys.exc_info())  # Flask's "Exception on <path> [GET]"
        logging.getLogger("app.test").warning("redirecting to /reset/%s", token)
    entries = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [e["message"] for e in entries] == ["Exception on /c/[redacted] [GET]", "redirecting to /reset/[redacted]"]
    assert "/j/[redacted]?code=[redacted]" in entries[0]["error"]
    for secret in (token, join, code):
        assert secret not in written.getvalue()


def test_the_development_servers_request_lines_hold_no_token(live_server, caplog, monkeypatch, make_host,
                                                            make_service, make_slot, make_booking):
    # Alembic's fileConfig (the session's migrations) disabled the loggers that existed then.
    monkeypatch.setattr(logging.getLogger("werkzeug"), "disabled", False)
    caplog.set_level(logging.INFO, logger="werkzeug")
    booking = make_booking(make_slot(make_service(make_host(), venue="manual_url", kind="class_event")))
    assert requests.get(f"{live_server}/c/{booking.cancel_token}", timeout=10).status_code == 200
    wait_until(lambda: any("/c/[redacted]" in record.getMessage() for record in caplog.records))
    assert booking.cancel_token not in caplog.text


@pytest.fixture
def mail_sink(app, monkeypatch):
    """The SMTP sink of ``make run`` (aiosmtpd's Maildir handler, as devtools.mail_sink runs it) as the app's SMTP."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    directory = app.config["MAILBOX_DIR"]
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    controller = Controller(Mailbox(directory), hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setitem(app.config, "SMTP_PORT", controller.port)
    yield mailbox.Maildir(directory, create=False)
    controller.stop()


def test_the_staff_mailbox_masks_password_reset_links(client, login, make_host, run_jobs, mail_sink):
    host = make_host(email="victim@example.com")
    outbox.queue_email("password_reset", to_email=host.email, to_name=host.display_name,
                       payload={"user_id": host.id})
    db.session.commit()
    run_jobs()
    [(key, received)] = mail_sink.items()  # the reset email, as `make run`'s sink stored it
    parsed = BytesParser(policy=policy.default).parsebytes(received.as_bytes())
    token = re.search(r"/reset/([^\s]+)", body_text(parsed))[1]
    login(make_host(email="ops@example.com", name="運営", is_staff=True))
    page = client.get(f"/staff/mailbox/{key}").get_data(as_text=True)
    assert "/reset/[redacted]" in page and token not in page
    # Nor encoded: the source is shown decoded (a base64 body would carry the link past the mask).
    encoded = [part.get_payload().splitlines()[0] for part in parsed.walk()
               if part.get("Content-Transfer-Encoding", "").lower() == "base64"]
    assert encoded and not [line for line in encoded if line in page]


# --- 3. no page in a cache ---------------------------------------------------------------------------------

def test_every_page_is_no_store_and_static_files_keep_their_caching(app, client, login, make_host, make_service,
                                                                  make_slot, make_booking):
    from PIL import Image

    from app.account import profile
    from app.messages import bulk
    from app.models import Delivery
    from tests.conftest import Browser

    host = make_host(email="cache-host@example.com")
    service = make_service(host, venue="manual_url", kind="class_event")
    slot = make_slot(service)
    booking = make_booking(slot, "キャッシュ 太郎", "cache-guest@example.com")
    message = bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="件名", body="本文",
                           scheduled_at=None)
    delivery = db.session.query(Delivery).filter_by(booking_id=booking.id).first()
    png = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 80, 40)).save(png, "PNG")
    profile.set_photo(host, profile.photo_jpeg(png.getvalue()))  # guest pages show it: public, cacheable
    db.session.commit()
    values = {"tool_key": "zoom", "service_id": service.id, "slot_id": slot.id, "message_id": message.id,
              "delivery_id": delivery.id, "booking_id": booking.id, "public_id": service.public_id, "key": "no-such-mail", "filename": "app.css",
              "digest": host.photo_digest}
    tokens = {"booking.cancel": booking.cancel_token, "booking.join": booking.join_token,
              "booking.booked": booking.cancel_token, "booking.calendar_file": booking.cancel_token,
              "booking.google_calendar": booking.cancel_token,
              "auth.reset_password": make_reset_token(host)}
    staff, anonymous = Browser(app.test_client()), Browser(app.test_client())
    make_host(email="cache-staff@example.com", name="運営", is_staff=True)
    assert staff.post("/login", {"email": "cache-staff@example.com", "password": PASSWORD}).status_code == 302
    login(host)
    adapter, checked = app.url_map.bind("localhost"), []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        unknown = rule.arguments - values.keys() - {"token"}
        assert not unknown, f"{rule.rule}: give this test a value for {unknown}"
        arguments = {name: tokens.get(rule.endpoint, "not-a-token") if name == "token" else values[name]
                     for name in rule.arguments}
        url = adapter.build(rule.endpoint, arguments)
        browsers = [staff] if rule.endpoint.startswith("staff.") else [client, anonymous]
        for browser in browsers:
            response = browser.get(url)
            cache_control = response.headers.get("Cache-Control", "")
            response.close()
            if rule.endpoint in ("static", "dashboard.favicon"):
                assert response.status_code == 200 and "no-store" not in cache_control, (url, cache_control)
            elif rule.endpoint == "account.photo":  # its URL changes with the photo: cached for good
                assert response.status_code == 200 and cache_control.startswith("public, max-age="), cache_control
            else:
                assert cache_control == "no-store", (url, response.status_code, cache_control)
            checked.append((rule.endpoint, response.status_code))
    reached = {endpoint for endpoint, status in checked if status == 200}
    assert {"booking.cancel", "booking.join", "booking.booked", "auth.reset_password", "dashboard.home",
            "services.slot_detail", "messages.detail", "staff.deliveries", "staff.mailbox"} <= reached, checked


# --- 4. the database and Redis's dump: this user's only ---------------------------------------------------

def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_the_sqlite_database_and_its_wal_are_created_owner_only(tmp_path):
    path = tmp_path / "new.db"
    engine = create_engine(f"sqlite:///{path}")  # the app's engine hooks apply to every SQLite engine
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE guests (email TEXT)"))
            conn.execute(text("INSERT INTO guests VALUES ('guest@example.com')"))
        with engine.connect() as conn:  # WAL mode: the data is in the -wal until a checkpoint
            assert conn.execute(text("SELECT email FROM guests")).scalar() == "guest@example.com"
            files = {name: mode(Path(f"{path}{name}")) for name in ("", "-wal", "-shm")}
    finally:
        engine.dispose()
    assert files == {"": "0o600", "-wal": "0o600", "-shm": "0o600"}


def test_an_existing_world_readable_database_is_made_owner_only(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()  # created before this fix, by another tool, or restored from a backup
    os.chmod(path, 0o644)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x)"))
    finally:
        engine.dispose()
    assert mode(path) == "0o600"


def test_the_app_database_is_owner_only(app):
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri.startswith("sqlite:///"):
        pytest.skip("PostgreSQL keeps its own files")
    assert mode(Path(uri.removeprefix("sqlite:///"))) == "0o600"


def test_the_local_redis_dump_is_owner_only(tmp_path):
    port = free_port()
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "devtools.redis_server", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(tmp_path), "--save", "", "--appendonly", "no"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Redis(port=port, socket_timeout=5)
    try:
        wait_until(lambda: _pings(client), timeout=15)
        client.set("rq:job:example", b"a pickled job")
        client.save()
        dump = tmp_path / "dump.rdb"
        assert mode(dump) == "0o600"
    finally:
        client.close()
        wrapper.send_signal(signal.SIGTERM)
        wrapper.wait(timeout=15)


def _pings(client: Redis) -> bool:
    try:
        return client.ping()
    except Exception:
        return False
