"""Abuse resistance (issue 16): no request can stall the product for others.

Against the live server (a real threaded HTTP server on the test database) with raw sockets
and a second, honest client.
"""
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests

from app.extensions import db
from app.models import Booking, User

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_TOKEN = re.compile(r'name="form_token" type="hidden" value="([^"]+)"')


def book_over_http(base: str, public_id: str, slot_id: int, email: str) -> tuple[int, float]:
    """An honest guest books through the public form: (status of the POST, seconds it took)."""
    with requests.Session() as guest:
        page = guest.get(f"{base}/s/{public_id}", timeout=15).text
        token = TOKEN.search(page).group(1)
        form_token = FORM_TOKEN.search(page).group(1)
        started = time.monotonic()
        response = guest.post(f"{base}/s/{public_id}", timeout=15, allow_redirects=False,
                              data={"csrf_token": token, "form_token": form_token, "slot_id": slot_id,
                                    "guest_name": "正直 太郎", "guest_email": email, "confirm": "1"})
        return response.status_code, time.monotonic() - started


def trickle(base: str, path: str, content_type: str) -> socket.socket:
    """Start a POST that promises 100 bytes and sends one: the server waits inside the request."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: 100\r\n\r\n{{".encode())
    time.sleep(0.3)  # the server has read the headers and is waiting for the rest of the body
    return sock


def test_a_client_trickling_its_body_never_holds_the_database(live_server, make_host, make_service, make_slot):
    service = make_service(make_host(), capacity=10, venue="manual_url")
    slot = make_slot(service)
    cases = [("/zoom/webhook", "application/json"),
             (f"/s/{service.public_id}", "application/x-www-form-urlencoded")]
    for n, (path, content_type) in enumerate(cases):
        slow = trickle(live_server, path, content_type)
        try:
            status, seconds = book_over_http(live_server, service.public_id, slot.id, f"honest{n}@example.com")
        finally:
            slow.close()
        assert status == 302 and seconds < 1.0, (path, status, seconds)
    db.session.rollback()
    assert db.session.query(Booking).count() == 2


def test_a_password_hash_is_never_computed_under_the_write_lock(app, live_server, make_host, make_service,
                                                                make_slot):
    service = make_service(make_host(), capacity=10, venue="manual_url")
    slot = make_slot(service)
    app.config["PASSWORD_HASH_METHOD"], fast = "pbkdf2:sha256:4000000", app.config["PASSWORD_HASH_METHOD"]
    finished = {}
    try:
        signup = threading.Thread(target=lambda: finished.update(
            signup=_sign_up(live_server, "slow-hash@example.com") or time.monotonic()))
        signup.start()
        time.sleep(0.2)  # the signup is hashing now (about a second)
        status, seconds = book_over_http(live_server, service.public_id, slot.id, "during@example.com")
        finished["booking"] = time.monotonic()
        signup.join(30)
    finally:
        app.config["PASSWORD_HASH_METHOD"] = fast
    assert status == 302
    assert finished["booking"] < finished["signup"], (seconds, finished)  # it did not wait for the hash
    db.session.rollback()
    assert db.session.query(User).filter_by(email="slow-hash@example.com").count() == 1


def _sign_up(base: str, email: str) -> None:
    with requests.Session() as browser:
        token = TOKEN.search(browser.get(f"{base}/signup", timeout=15).text).group(1)
        browser.post(f"{base}/signup", timeout=30, allow_redirects=False,
                     data={"csrf_token": token, "email": email, "display_name": "新しい ホスト",
                           "password": "long-enough-pass-2026", "confirm": "long-enough-pass-2026"})


# --- the webhook: small bodies, signatures compared as bytes, checked before the JSON is read ----------

def _signed(app, raw: bytes) -> dict:
    timestamp = str(int(time.time()))
    digest = hmac.new(app.config["ZOOM_WEBHOOK_SECRET_TOKEN"].encode(), b"v0:" + timestamp.encode() + b":" + raw,
                      hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": timestamp, "x-zm-signature": f"v0={digest}"}


def test_the_webhook_refuses_a_large_body_before_reading_it(client, app):
    raw = json.dumps({"event": "meeting.deleted", "payload": {"pad": "x" * 20_000}}).encode()
    response = client.post_raw("/zoom/webhook", data=raw, content_type="application/json", headers=_signed(app, raw))
    assert response.status_code == 413


def test_a_non_ascii_signature_is_refused_not_a_server_error(live_server):
    url = urlsplit(live_server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        body = b'{"event":"app_deauthorized"}'
        sock.sendall(b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"x-zm-request-timestamp: " + str(int(time.time())).encode() + b"\r\n"
                     b"x-zm-signature: v0=\xe3\x81\x82\xff\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        status_line = sock.recv(100).split(b"\r\n")[0]
    assert status_line.split()[1] == b"401", status_line


def test_an_unsigned_body_is_refused_before_its_json_is_parsed(client):
    response = client.post_raw("/zoom/webhook", data=b"{not json", content_type="application/json",
                               headers={"x-zm-request-timestamp": str(int(time.time())), "x-zm-signature": "v0=00"})
    assert response.status_code == 401


def test_any_request_body_over_the_limit_gets_a_clear_japanese_page(client, make_host, make_service, make_slot):
    service = make_service(make_host(), venue="manual_url")
    slot = make_slot(service, starts_in=timedelta(days=3))
    response = client.post(f"/s/{service.public_id}", {"slot_id": slot.id, "guest_name": "佐藤",
                                                       "guest_email": "a@example.com", "x": "y" * 1_100_000})
    assert response.status_code == 413
    assert "送信された内容が大きすぎます" in response.get_data(as_text=True)
