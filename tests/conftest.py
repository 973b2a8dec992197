"""Fixtures over real parts: a real Redis server, a real SMTP server (aiosmtpd), a real
database file with the real migrations, RQ's own worker, and a live HTTP server for the
browser tests. Nothing is faked; tables and Redis are emptied between tests.
"""
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from flask import g
from flask_migrate import upgrade
from redis import Redis
from rq import SimpleWorker
from werkzeug.serving import make_server

from app import clock, create_app
from app.extensions import db
from app.mail import outbox
from app.queue import QUEUE_NAMES, get_queue, get_redis
from config import TestConfig
from tests import factories


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# --- real Redis -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server is not installed (apt-get install redis-server)", returncode=2)
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = Redis(port=port)
    try:
        wait_until(lambda: _pings(client), timeout=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: Redis) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


# --- real SMTP server ---------------------------------------------------------------------------

class Inbox:
    """What the aiosmtpd server received: parsed messages plus SMTP envelopes."""

    def __init__(self):
        self._lock = threading.Lock()
        self.messages = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        with self._lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        """Wait until at least ``count`` messages arrived; return them all."""
        wait_until(lambda: len(self.messages) >= count, timeout=timeout)
        return list(self.messages)

    def to(self, address: str) -> list:
        """Messages whose To header contains ``address``."""
        return [m for m in self.messages if address in str(m["To"])]


def selects_sending_due_mail(app, expected: int) -> int:
    """The SELECT statements one outbox sweep runs in a fresh session, as in a work horse (it must
    send ``expected`` emails): equal counts for more recipients show there is no query per email."""
    from sqlalchemy import event

    from app.extensions import db
    from app.mail import outbox

    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert outbox.send_due() == expected
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    return sum(statement.lstrip().upper().startswith("SELECT") for statement in statements)


def send_with_smtp_down_until_given_up(app) -> None:
    """Sweep the outbox MAIL_MAX_ATTEMPTS times, an hour apart (past every backoff), with no SMTP server."""
    app.config["SMTP_PORT"], real_port = 1, app.config["SMTP_PORT"]
    try:
        for _ in range(app.config["MAIL_MAX_ATTEMPTS"]):
            outbox.send_due()
            clock.advance(timedelta(hours=1))
    finally:
        app.config["SMTP_PORT"] = real_port


def body_text(message) -> str:
    """The text/plain part of a received message."""
    return message.get_body(preferencelist=("plain",)).get_content()


def body_html(message) -> str:
    """The text/html part of a received message."""
    return message.get_body(preferencelist=("html",)).get_content()


@pytest.fixture(scope="session")
def smtp_server():
    from devtools.mail_sink import Pipelining

    inbox = Inbox()
    # Offering PIPELINING, as production relays do (the tests with servers of their own do not).
    controller = Controller(Pipelining(inbox), hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.clear()
    return smtp_server


# --- the app on a real database --------------------------------------------------------------

# --- the local Zoom emulator ----------------------------------------------------------------

@pytest.fixture(scope="session")
def zoom_server():
    from devtools.zoom_emulator.server import EmulatorServer

    server = EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def zoom(zoom_server):
    """The emulator, reset for this test (users, tokens, meetings, faults, call log)."""
    zoom_server.reset()
    return zoom_server


# --- the local Google emulator ----------------------------------------------------------------

@pytest.fixture(scope="session")
def google_server():
    from devtools.google_emulator.server import GoogleEmulatorServer

    server = GoogleEmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def google(google_server):
    """The Google emulator, reset for this test (consents, tokens, events, faults, call log, modes)."""
    google_server.reset()
    return google_server


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """SQLite file by default; ``TEST_DATABASE=postgresql`` runs a throwaway PostgreSQL cluster."""
    if os.environ.get("TEST_DATABASE") == "postgresql":
        from tests.postgres import Cluster

        cluster = Cluster(free_port()).start()
        yield cluster.url
        cluster.stop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory, redis_url, smtp_server, zoom_server, google_server):
    app = create_app(
        TestConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        REDIS_URL=redis_url,
        SMTP_PORT=smtp_server.port,
        MAILBOX_DIR=str(tmp_path_factory.mktemp("mailbox")),
        ZOOM_OAUTH_BASE_URL=zoom_server.url,
        ZOOM_API_BASE_URL=zoom_server.api_url,
        ZOOM_CLIENT_ID=zoom_server.client_id,
        ZOOM_CLIENT_SECRET=zoom_server.client_secret,
        ZOOM_WEBHOOK_SECRET_TOKEN=zoom_server.webhook_secret_token,
        GOOGLE_CLIENT_ID=google_server.client_id,
        GOOGLE_CLIENT_SECRET=google_server.client_secret,
        GOOGLE_AUTHORIZE_URL=google_server.authorize_url,
        GOOGLE_TOKEN_URL=google_server.token_url,
        GOOGLE_REVOKE_URL=google_server.revoke_url,
        GOOGLE_CALENDAR_BASE_URL=google_server.calendar_url,
    )
    with app.app_context():
        upgrade()  # the real migrations, not create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()  # close pooled connections before the database goes away


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Each test that uses the app starts with empty tables, an empty Redis and the real clock."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        yield
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        get_redis().flushdb()
    clock.reset()


class CsrfClient:
    """A test client that sends the CSRF token the way a browser does (read from the page)."""

    _TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')

    def __init__(self, client):
        self.raw = client

    @staticmethod
    def _new_request() -> None:
        # The test holds one app context, which the test client reuses for every request, so
        # ``g`` would carry Flask-WTF's cached token from one request (and session) to the next.
        g.pop("csrf_token", None)

    @staticmethod
    def _end_request(response):
        # Likewise the request's database session is the test's: end its transaction as the
        # request's teardown would, or a write lock taken during the request stays held.
        db.session.rollback()
        return response

    def get(self, url, **kwargs):
        self._new_request()
        return self._end_request(self.raw.get(url, **kwargs))

    def post_raw(self, url, **kwargs):
        """POST exactly what is given (no token added): forged or signed requests."""
        self._new_request()
        return self._end_request(self.raw.post(url, **kwargs))

    def token(self, url) -> str:
        page = self.get(url).get_data(as_text=True)
        match = self._TOKEN.search(page)
        assert match, f"no CSRF token on {url}"
        return match.group(1) or match.group(2)

    _HIDDEN = re.compile(r'<input[^>]*\bname="(form_token)"[^>]*\bvalue="([^"]*)"')

    def post(self, url, data=None, *, form_url=None, **kwargs):
        """POST ``data`` with the token read from ``form_url`` (default: the same URL), and the
        booking form's bot-check token when the page has one, as a browser sends them."""
        data = dict(data or {})
        page = self.get(form_url or url).get_data(as_text=True)
        match = self._TOKEN.search(page)
        if "csrf_token" not in data:
            assert match, f"no CSRF token on {form_url or url}"
            data["csrf_token"] = match.group(1) or match.group(2)
        for name, value in self._HIDDEN.findall(page):
            data.setdefault(name, value)
        self._new_request()
        return self._end_request(self.raw.post(url, data=data, **kwargs))


class Browser(CsrfClient):
    """Another browser beside ``client``, with its own cookies.

    Every test request shares the test's app context, and Flask-Login caches the request's user
    in ``g``: left there, one browser's login would answer for the other's requests.
    """

    @staticmethod
    def _new_request() -> None:
        CsrfClient._new_request()
        g.pop("_login_user", None)

    @staticmethod
    def _end_request(response):
        g.pop("_login_user", None)
        return CsrfClient._end_request(response)


@pytest.fixture
def client(app):
    return CsrfClient(app.test_client())


@pytest.fixture
def login(client):
    def login_as(user, password=factories.PASSWORD):
        response = client.post("/login", {"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return login_as


@pytest.fixture
def run_jobs(app):
    """Run every queued RQ job in this process (RQ's own SimpleWorker, burst mode)."""

    class TestWorker(SimpleWorker):
        def perform_job(self, *args, **kwargs):
            with app.app_context():
                return super().perform_job(*args, **kwargs)

    def run() -> None:
        queues = [get_queue(name) for name in QUEUE_NAMES]
        TestWorker(queues, connection=get_redis()).work(burst=True, logging_level="WARNING")
        db.session.rollback()  # end the read snapshot: see what the worker committed

    return run


@pytest.fixture
def link_zoom(client, login, zoom):
    """Link a host's Zoom through the real OAuth flow (consent answered by the emulator)."""

    def link(host, zoom_email="basic@zoom.test"):
        login(host)
        start = client.post("/settings/zoom/link", form_url="/settings/zoom")
        assert start.status_code == 302, start.get_data(as_text=True)
        query = parse_qs(urlsplit(start.headers["Location"]).query)
        code = zoom.authorize_code_for(zoom_email, redirect_uri=query["redirect_uri"][0], state=query["state"][0],
                                       code_challenge=query["code_challenge"][0])
        done = client.get(f"/zoom/callback?code={code}&state={query['state'][0]}")
        assert done.status_code == 302
        db.session.rollback()
        return query

    return link


@pytest.fixture
def link_google(client, login, google):
    """Link a host's Google Calendar through the real OAuth flow (consent answered by the emulator).

    ``granted_scopes`` lets the user untick scopes on the consent screen (default: all asked).
    """

    def link(host, google_email="free@gmail.test", *, granted_scopes=None):
        login(host)
        start = client.post("/settings/google/link", form_url="/settings")
        assert start.status_code == 302, start.get_data(as_text=True)
        assert start.headers["Location"].startswith(google.authorize_url), start.headers["Location"]
        query = parse_qs(urlsplit(start.headers["Location"]).query)
        code = google.authorize_code_for(
            google_email, redirect_uri=query["redirect_uri"][0], state=query["state"][0],
            code_challenge=query["code_challenge"][0], scope=query["scope"][0],
            access_type=query.get("access_type", ["online"])[0], prompt=query.get("prompt", [""])[0],
            granted_scopes=granted_scopes,
        )
        done = client.get(f"/google/callback?code={code}&state={query['state'][0]}")
        assert done.status_code == 302
        db.session.rollback()
        return query

    return link


@pytest.fixture
def production_app(monkeypatch, database_url, redis_url, app):
    """``create_app(ProductionConfig)`` with production secrets (JSON logs), on the test database and Redis."""
    from cryptography.fernet import Fernet

    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", "production-secret-" + "x" * 32)
    monkeypatch.setattr(ProductionConfig, "TOKEN_ENCRYPTION_KEY", Fernet.generate_key().decode())
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    production = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url)
    yield production
    root.handlers[:] = before  # LOG_JSON replaced the root handlers
    root.setLevel(level)
    with production.app_context():
        db.session.remove()
        db.engine.dispose()  # its own pool: close it before the database goes away


# --- factories ----------------------------------------------------------------------------------

@pytest.fixture
def make_host(app):
    return factories.make_host


@pytest.fixture
def make_service(app):
    return factories.make_service


@pytest.fixture
def make_slot(app):
    return factories.make_slot


@pytest.fixture
def make_booking(app):
    return factories.make_booking


# --- live server for the browser -------------------------------------------------------------

def _closing(wsgi_app):
    """``wsgi_app`` whose responses are closed however a request ends.

    Werkzeug's server skips ``close()`` when the browser drops the connection while the server
    drains the request (the page moved on while its favicon was sent): the open file then raises
    a ``ResourceWarning`` (an error here) in whichever test collects it.
    """

    def app(environ, start_response):
        response = wsgi_app(environ, start_response)
        try:
            yield from response
        finally:  # also when the server lets go of this generator without closing it
            if hasattr(response, "close"):
                response.close()

    return app


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", free_port(), _closing(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["APP_BASE_URL"] = url
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def full_page_screenshot(page, path: str) -> None:
    """A screenshot of the whole page with the email frames drawn: Chromium's full-page capture
    leaves frames it has not painted blank, so the viewport is made as tall as the page first."""
    width = page.viewport_size["width"]
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": min(height, 15000)})
    page.wait_for_timeout(300)
    page.screenshot(path=path)
    page.set_viewport_size({"width": width, "height": 812})


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", base_url=live_server)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
