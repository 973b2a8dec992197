"""Attacks on the real app: access across hosts, CSRF, stored XSS and SSTI, header injection,
OAuth state and redirects, webhook forgery and replay, sessions, security headers (with a
browser proving the pages still work under the CSP), and secrets at rest and in logs.

Route tables are read from ``app.url_map``, so a route added later is attacked too (or the
test says which table it is missing from).
"""
import hashlib
import hmac
import json
import logging
import re
import time
import zlib
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import pytest
from markupsafe import escape

from app import clock, crypto
from app.extensions import db
from app.mail import outbox
from app.mail.render import RenderedEmail, build_message
from app.messages import bulk
from app.models import Booking, Delivery, DeliveryStatus, Message, Service, User, ZoomConnection
from app.queue import QUEUE_NAMES, get_queue, get_redis
from app.zoom import link
from tests.conftest import Browser, body_html, body_text, wait_until
from tests.factories import PASSWORD

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)")
SSTI = ("{{7*7}}", "{{ config }}")
#: Fits the 80-character names; ``FULL`` fits titles (100) and longer fields.
SHORT = XSS[0] + XSS[1] + SSTI[0]
FULL = " ".join(XSS + SSTI)
#: A link whose query tries to break out of the ``href`` (linkify stops the URL at the quote).
URL_BREAKOUT = 'https://ok.example/?q="><img src=x onerror=alert(1)>'
CSRF_REFUSED = "フォームの有効期限が切れました"


def queued_jobs() -> tuple[int, ...]:
    """How many jobs wait in each RQ queue."""
    return tuple(get_queue(name).count for name in QUEUE_NAMES)


def mail_settled() -> bool:
    """No email is due, none is being sent and no job waits: nothing more can reach the SMTP server."""
    db.session.rollback()
    sending = db.session.query(Delivery).filter(Delivery.status == DeliveryStatus.SENDING).count()
    return outbox.due_count() == 0 and sending == 0 and sum(queued_jobs()) == 0


def database_rows() -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order (what "unchanged" is checked against)."""
    db.session.rollback()
    return {table.name: [tuple(row) for row in db.session.execute(
        table.select().order_by(*table.primary_key.columns)).all()] for table in db.metadata.sorted_tables}


def assert_inert(html: str, where: str) -> None:
    """No payload survives as markup: scripts, handlers and ``javascript:`` links are text only."""
    lowered = html.lower()
    assert XSS[0] not in html, where
    assert "<img src=x" not in lowered, where
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", lowered), where
    assert "test-secret-key" not in html and "SECRET_KEY" not in html, where  # {{ config }} never ran


def logged_in_client(app, user) -> Browser:
    """A second browser, logged in as ``user``."""
    other = Browser(app.test_client())
    assert other.post("/login", {"email": user.email, "password": PASSWORD}).status_code == 302
    return other


_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def url_arguments(rule) -> list[tuple[str, str]]:
    """``[(converter, name)]`` of a rule, e.g. ``[("int", "service_id")]``."""
    return [(m["converter"] or "string", m["name"]) for m in _ARGUMENT.finditer(rule.rule)]


# --- access matrix (IDOR / BOLA) ------------------------------------------------------------------

#: Every host-owned object a URL can name, by argument: the matrix fills in host A's. A route
#: whose argument is in neither table fails the matrix until someone says what it is.
HOST_OBJECT_ARGUMENTS = {
    ("int", "service_id"): "service",
    ("int", "slot_id"): "slot",
    ("int", "message_id"): "message",
    ("int", "delivery_id"): "delivery",
    ("int", "booking_id"): "booking",
}
#: Arguments that are not host-owned ids: capability tokens handed to guests (the unguessable
#: link is the credential), the staff mailbox key (staff routes are refused to hosts anyway),
#: static file names, the content hash of a profile photo (public: guest pages show it) and a video
#: tool's key (the pages act on the signed-in host's own link).
NOT_HOST_OWNED_ARGUMENTS = {("string", "public_id"), ("string", "token"), ("string", "key"),
                            ("string", "tool_key"), ("path", "filename"), ("string", "digest")}
#: Routes that take a host-owned id from the query string instead of the path.
QUERY_ID_ROUTES = {"/messages/new?service_id={service}"}
#: Booking ids arrive only in form bodies (「URLを再送」 on a slot page): every attacking POST
#: carries A's booking id too; test_pagination checks A's booking sent to B's own slot is refused.
#: Form fields that would make any host form valid if its owner check were missing.
TAKEOVER_FORM = {"kind": "class_event", "venue": "manual_url", "title": "乗っ取り", "description": "乗っ取り",
                 "duration_minutes": "30", "capacity": "2", "host_notes": "乗っ取り", "subject": "乗っ取り",
                 "body": "乗っ取り", "send_mode": "now", "action": "send", "starts_at": "2031-01-01T10:00"}


@pytest.fixture
def host_a_objects(make_host, make_service, make_slot, make_booking):
    """Host A with a service, a slot, a booking (and its confirmation row) and a scheduled message."""
    host = make_host(email="a@example.com", name="ホストA")
    service = make_service(host, title="Aの秘密講座", kind="class_event", venue="manual_url")
    slot = make_slot(service)
    booking = make_booking(slot, "Aの生徒", "a-guest@example.com")
    message = bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="Aの秘密メッセージ",
                           body="本文", scheduled_at=clock.now() + timedelta(days=1))
    delivery = db.session.query(Delivery).filter_by(booking_id=booking.id).first()
    return host, {"service": service.id, "slot": slot.id, "booking": booking.id, "message": message.id,
                  "delivery": delivery.id}


def test_host_b_reaches_none_of_host_a_objects_on_any_route(app, client, login, make_host, host_a_objects):
    _, ids = host_a_objects
    login(make_host(email="b@example.com", name="ホストB"))
    before, jobs_before = database_rows(), queued_jobs()
    secrets = ("Aの秘密講座", "Aの生徒", "a-guest@example.com", "Aの秘密メッセージ")
    adapter = app.url_map.bind("localhost")
    attacked, kinds_used = [], set()

    def attack(url, methods, allowed):
        for method in methods:
            if method == "GET":
                response = client.get(url)
            else:  # a valid CSRF token of B's own session: only the owner check can refuse this
                response = client.post(url, {**TAKEOVER_FORM, "slot_ids": str(ids["slot"]),
                                             "booking_id": str(ids["booking"])}, form_url="/dashboard")
            assert response.status_code in allowed, (method, url, response.status_code)
            page = response.get_data(as_text=True)
            assert not [s for s in secrets if s in page], (method, url)
            attacked.append((method, url))

    for rule in app.url_map.iter_rules():
        arguments = url_arguments(rule)
        unknown = [a for a in arguments if a not in HOST_OBJECT_ARGUMENTS and a not in NOT_HOST_OWNED_ARGUMENTS]
        assert not unknown, f"{rule.rule}: add {unknown} to HOST_OBJECT_ARGUMENTS or NOT_HOST_OWNED_ARGUMENTS"
        owned = [a for a in arguments if a in HOST_OBJECT_ARGUMENTS]
        staff = rule.endpoint.startswith("staff.")
        if not owned and not staff:
            continue
        values = {}
        for argument in arguments:
            kind = HOST_OBJECT_ARGUMENTS.get(argument)
            assert kind or staff, f"{rule.rule} mixes host ids with {argument}: extend the matrix"
            values[argument[1]] = ids[kind] if kind else "x"
            kinds_used.add(kind)
        url = adapter.build(rule.endpoint, values)
        attack(url, sorted(rule.methods & {"GET", "POST"}), {403} if staff else {403, 404})
    for template in QUERY_ID_ROUTES:
        attack(template.format(**ids), ("GET", "POST"), {403, 404})

    # Every kind of object was aimed at, and every owned-id and staff route was attacked.
    assert kinds_used - {None} == set(HOST_OBJECT_ARGUMENTS.values())
    assert len(attacked) >= 25, attacked
    assert database_rows() == before  # host A's data (and everything else) unchanged
    assert queued_jobs() == jobs_before


# --- CSRF -------------------------------------------------------------------------------------------

def test_every_state_changing_route_refuses_a_post_without_its_csrf_token(app, client, login, host_a_objects):
    host, ids = host_a_objects
    login(host)  # the owner: with a token, each of these requests would go through
    booking = db.session.get(Booking, ids["booking"])
    by_name = {"public_id": booking.slot.service.public_id, "token": booking.cancel_token, "key": "x",
               "tool_key": "zoom"}
    by_name.update({name: ids[kind] for (_, name), kind in HOST_OBJECT_ARGUMENTS.items()})
    foreign_token = Browser(app.test_client()).token("/login")  # another browser's session
    before, jobs_before = database_rows(), queued_jobs()
    refused = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint == "zoom.webhook_endpoint":
            continue
        url = app.url_map.bind("localhost").build(rule.endpoint, {n: by_name[n] for _, n in url_arguments(rule)})
        for token in ({}, {"csrf_token": foreign_token}, {"csrf_token": "forged"}):
            response = client.post_raw(url, data={**TAKEOVER_FORM, **token})
            assert response.status_code == 400, (url, token, response.status_code)
            assert CSRF_REFUSED in response.get_data(as_text=True), url
        refused.append(rule.endpoint)
    assert {"auth.logout", "services.preview_notes", "zoom.start_link", "staff.resend"} <= set(refused)
    assert database_rows() == before
    assert queued_jobs() == jobs_before  # nothing was started either
    # The one exemption is signed by Zoom instead: unsigned, it is refused (401, not 400).
    assert client.post_raw("/zoom/webhook", json={"event": "app_deauthorized"}).status_code == 401


# --- stored XSS, SSTI ------------------------------------------------------------------------------

def test_payloads_in_every_field_render_inert_in_pages_and_emails(app, client, run_jobs, smtp):
    # The host signs up with a hostile display name and creates a hostile service.
    client.post("/signup", {"email": "evil-host@example.com", "display_name": SHORT,
                            "password": "long-enough-1", "confirm": "long-enough-1"})
    # … confirms the address with the link of the confirmation email, and logs in.
    run_jobs()
    [welcome] = smtp.wait_for(1)
    assert_inert(body_html(welcome), "confirmation email")
    client.post(urlsplit(re.search(r"https?://\S+/verify/\S+", body_text(welcome)).group(0)).path, {})
    smtp.clear()
    assert client.post("/login", {"email": "evil-host@example.com", "password": "long-enough-1"}).status_code == 302
    notes = f"{FULL}\n{URL_BREAKOUT}"
    # The profile guests see (the introduction is on the booking page) and an in-person service
    # whose address (in a map link too) and cancellation policy are the payloads.
    assert client.post("/settings/account/profile", {"display_name": SHORT, "bio": notes},
                       form_url="/settings/account").status_code == 302
    created = client.post("/services/new", {"kind": "class_event", "venue": "in_person", "title": FULL,
                                            "description": notes, "duration_minutes": "60", "capacity": "5",
                                            "host_notes": notes, "venue_address": FULL,
                                            "cancellation_policy": notes})
    assert created.status_code == 302, created.get_data(as_text=True)
    service = db.session.query(Service).one()
    starts = clock.to_local(clock.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    client.post(f"/services/{service.id}", {"starts_at": starts})
    slot = service.slots[0]
    # A guest books with a hostile name (another browser): markup is refused in a name, with a
    # message (and shown back inert); template syntax is just text.
    guest = Browser(app.test_client())
    public = f"/s/{service.public_id}"
    refused = guest.post(public, {"slot_id": str(slot.id), "guest_name": SHORT, "guest_email": "victim@example.com",
                                  "confirm": "1"})
    assert refused.status_code == 200 and "お名前にURLやメールアドレス" in refused.get_data(as_text=True)
    assert_inert(refused.get_data(as_text=True), "refused booking form")
    guest_name = f"{SSTI[0]} {SSTI[1]} 佐藤"
    booked = guest.post(public, {"slot_id": str(slot.id), "guest_name": guest_name,
                                 "guest_email": "victim@example.com", "confirm": "1"})
    assert booked.status_code == 302, booked.get_data(as_text=True)
    booking = db.session.query(Booking).one()
    assert booking.guest_name == guest_name and db.session.get(User, service.host_id).display_name == SHORT
    # The host sends a hostile bulk message (preview first).
    compose = f"/messages/new?service_id={service.id}"
    message_form = {"slot_ids": str(slot.id), "subject": FULL, "body": notes, "send_mode": "now"}
    preview = client.post(compose, {**message_form, "action": "preview"}).get_data(as_text=True)
    assert client.post(compose, {**message_form, "action": "send"}).status_code == 302
    message = db.session.query(Message).one()

    pages = {"compose preview": preview}
    for url in ("/dashboard", "/dashboard/upcoming", "/services", f"/services/{service.id}", f"/slots/{slot.id}",
                f"/slots/{slot.id}?q={quote(SHORT)}", f"/services/{service.id}/edit",
                f"/services/{service.id}/notes", f"/slots/{slot.id}/move", f"/slots/{slot.id}/cancel",
                "/messages", f"/messages/{message.id}", compose):
        pages[url] = client.get(url).get_data(as_text=True)
    for url in (public, f"{public}/booked/{booking.cancel_token}", f"/c/{booking.cancel_token}",
                f"/j/{booking.join_token}"):
        pages[url] = guest.get(url).get_data(as_text=True)
    pages["notes preview (JSON)"] = client.post(f"/services/{service.id}/notes/preview", {"host_notes": notes},
                                                form_url=f"/services/{service.id}/notes").json["html"]
    for where, html in pages.items():
        assert_inert(html, where)
    # The payloads were really on those pages, as text.
    shown = str(escape(XSS[0]))
    for url in ("/dashboard", f"/services/{service.id}", f"/slots/{slot.id}", f"/slots/{slot.id}?q={quote(SHORT)}",
                public, f"/messages/{message.id}", "compose preview"):
        assert shown in pages[url], url
    assert "{{7*7}}" in pages[public] and "{{ config }}" in pages[public]  # literally, never evaluated

    run_jobs()
    mails = smtp.wait_for(2)
    confirmation = next(m for m in mails if m["Subject"].startswith("【お申し込み完了】"))
    bulk_mail = next(m for m in mails if m["Subject"] == FULL)  # the subject arrives literally
    for mail in (confirmation, bulk_mail):
        html, text = body_html(mail), body_text(mail)
        assert_inert(html, mail["Subject"])
        assert shown in html and '<a href="https://ok.example/?q=" rel="noopener noreferrer">' in html
        assert "{{7*7}}" in text and "{{ config }}" in text and "SECRET_KEY" not in text
        assert [a.addr_spec for a in mail["To"].addresses] == ["victim@example.com"]
    assert all(len(rcpts) == 1 for _, rcpts in smtp.envelopes)


def test_placeholders_cannot_reach_python_attributes_or_templates(client, login, make_host, make_service,
                                                                   make_slot, make_booking, run_jobs, smtp):
    host = make_host()
    service = make_service(host, kind="class_event", venue="manual_url")
    slot = make_slot(service)
    make_booking(slot, "一郎", "ichiro@example.com")
    login(host)
    body = ("{guest_name.__class__} {0.__class__} {guest_name!r} %(guest_name)s ${7*7} <%= 7*7 %> "
            "{{''.__class__.__mro__}}")
    client.post(f"/messages/new?service_id={service.id}", {"slot_ids": str(slot.id), "subject": "件名", "body": body,
                                                          "send_mode": "now", "action": "send"})
    run_jobs()
    text = body_text(next(m for m in smtp.wait_for(2) if m["Subject"] == "件名"))
    assert body in text and "<class" not in text


# --- header injection -------------------------------------------------------------------------------

INJECTIONS = ("名前\r\nBcc: evil@example.com", "名前\nBcc: evil@example.com", "名前\rBcc: evil@example.com",
              "x\nFrom : admin@example.com")


@pytest.mark.parametrize("value", INJECTIONS)
def test_forms_refuse_line_breaks_in_names_titles_and_emails(app, client, login, make_host, make_service,
                                                            make_slot, value):
    refused = "改行や制御文字は使えません"
    page = client.post("/signup", {"email": "new@example.com", "display_name": value, "password": "long-enough-1",
                                   "confirm": "long-enough-1"}).get_data(as_text=True)
    assert refused in page and db.session.query(User).count() == 0
    host = make_host()
    service = make_service(host)
    slot = make_slot(service)
    public = f"/s/{service.public_id}"
    page = client.post(public, {"slot_id": str(slot.id), "guest_name": value,
                                "guest_email": "g@example.com", "confirm": "1"}).get_data(as_text=True)
    assert refused in page
    page = client.post(public, {"slot_id": str(slot.id), "guest_name": "山田", "confirm": "1",
                                "guest_email": "g@example.com\r\nBcc: evil@example.com"}).get_data(as_text=True)
    assert "メールアドレスの形式が正しくありません" in page
    assert db.session.query(Booking).count() == 0
    login(host)
    page = client.post("/services/new", {"kind": "class_event", "venue": "manual_url", "title": value,
                                         "duration_minutes": "60", "capacity": "1"}).get_data(as_text=True)
    assert refused in page and db.session.query(Service).count() == 1


@pytest.mark.parametrize("value", INJECTIONS + ("x\u2028Bcc: evil@example.com",))
def test_email_message_refuses_line_breaks_in_headers_anyway(app, value):
    """Past the forms (a row written by code), ``build_message`` still refuses to build the header."""
    with pytest.raises(ValueError):
        build_message(Delivery(to_email="guest@example.com", to_name="山田"),
                      RenderedEmail(subject=value, text="本文", html="<p>本文</p>"))
    with pytest.raises(ValueError):
        build_message(Delivery(to_email=f"guest@example.com{value}", to_name="山田"),
                      RenderedEmail(subject="件名", text="本文", html="<p>本文</p>"))
    # A display name goes in as an ``Address``: refused, or encoded (RFC 2047) into the one To header.
    try:
        message = build_message(Delivery(to_email="guest@example.com", to_name=value),
                                RenderedEmail(subject="件名", text="本文", html="<p>本文</p>"))
    except ValueError:
        return
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    assert parsed["Bcc"] is None and len(parsed.get_all("From")) == 1
    assert [a.addr_spec for a in parsed["To"].addresses] == ["guest@example.com"]


def test_a_subject_with_a_line_break_written_past_the_form_never_reaches_smtp(
        app, make_host, make_service, make_slot, make_booking, run_jobs, smtp):
    host = make_host()
    service = make_service(host, kind="class_event", venue="manual_url")
    slot = make_slot(service)
    make_booking(slot, "一郎", "ichiro@example.com")
    bulk.compose(host, service, slot_ids=[slot.id], all_upcoming=False, subject="件名\r\nBcc: evil@example.com",
                 body="本文", scheduled_at=None)
    run_jobs()
    smtp.wait_for(1)  # the booking confirmation
    wait_until(mail_settled)  # and nothing else will come
    assert all("evil@example.com" not in m.as_string() for m in smtp.messages)
    assert all(rcpts == ["ichiro@example.com"] for _, rcpts in smtp.envelopes)
    failed = db.session.query(Delivery).filter(Delivery.bulk_message_id.is_not(None)).one()
    assert "line break in a header value" in failed.last_error


def test_unicode_line_separators_in_names_are_refused(client, make_host, make_service, make_slot):
    service = make_service(make_host())
    slot = make_slot(service)
    for separator in ("\u2028", "\u2029", "\x85"):
        client.post(f"/s/{service.public_id}", {"slot_id": str(slot.id), "guest_name": f"山田{separator}花子",
                                                "guest_email": "g@example.com", "confirm": "1"})
    assert db.session.query(Booking).count() == 0


# --- OAuth ------------------------------------------------------------------------------------------

def start_linking(client) -> dict:
    """Press "Zoomと連携する": the authorize URL's query (state, PKCE challenge, redirect_uri)."""
    start = client.post("/settings/zoom/link", form_url="/settings/zoom")
    assert start.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}


def consent(zoom, query, email="basic@zoom.test") -> str:
    """The emulator's consent for this authorize request: an authorization code."""
    return zoom.authorize_code_for(email, redirect_uri=query["redirect_uri"], state=query["state"],
                                   code_challenge=query["code_challenge"])


def code_exchanges(zoom) -> list:
    return [c for c in zoom.calls("/oauth/token") if c["form"].get("grant_type") == "authorization_code"]


def test_oauth_state_is_random_pkce_s256_and_single_use(client, login, make_host, zoom):
    host = make_host()
    login(host)
    query = start_linking(client)
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 22  # ≥ 128 bits
    assert start_linking(client)["state"] != query["state"]
    first = client.get(f"/zoom/callback?code={consent(zoom, query)}&state={query['state']}", follow_redirects=True)
    assert "Zoomと連携しました" in first.get_data(as_text=True)
    # Replaying the callback (a fresh code for the same state) is refused before any exchange.
    again = client.get(f"/zoom/callback?code={consent(zoom, query)}&state={query['state']}", follow_redirects=True)
    assert "Zoomとの連携に失敗しました" in again.get_data(as_text=True)
    assert len(code_exchanges(zoom)) == 1


def test_oauth_callback_without_state_is_refused(client, login, make_host, zoom):
    host = make_host()
    login(host)
    query = start_linking(client)
    page = client.get(f"/zoom/callback?code={consent(zoom, query)}", follow_redirects=True).get_data(as_text=True)
    assert "Zoomとの連携に失敗しました" in page
    assert code_exchanges(zoom) == [] and db.session.query(ZoomConnection).count() == 0


def test_oauth_state_of_another_session_is_refused(app, client, login, make_host, zoom):
    """CSRF on the callback: a victim is sent to the callback with the attacker's code and state."""
    attacker = logged_in_client(app, make_host(email="attacker@example.com"))
    attacker_query = start_linking(attacker)
    attacker_code = consent(zoom, attacker_query, "licensed@zoom.test")
    login(make_host(email="victim@example.com"))
    start_linking(client)  # the victim has a linking of their own in progress
    page = client.get(f"/zoom/callback?code={attacker_code}&state={attacker_query['state']}",
                      follow_redirects=True).get_data(as_text=True)
    assert "Zoomとの連携に失敗しました" in page
    assert code_exchanges(zoom) == [] and db.session.query(ZoomConnection).count() == 0


def test_oauth_denied_consent_links_nothing(client, login, make_host, zoom):
    login(make_host())
    query = start_linking(client)
    page = client.get(f"/zoom/callback?error=access_denied&state={query['state']}",
                      follow_redirects=True).get_data(as_text=True)
    assert "キャンセルされました" in page and code_exchanges(zoom) == []


@pytest.mark.parametrize("target", [
    "https://evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
    "http:evil.example", " //evil.example", "javascript:alert(1)",
    "/\t/evil.example", "/\r\n/evil.example",
])
def test_login_never_redirects_off_site(client, make_host, target):
    host = make_host()
    response = client.post_raw(f"/login?next={quote(target)}", data={
        "email": host.email, "password": PASSWORD, "csrf_token": client.token("/login")})
    assert response.status_code == 302
    resolved = urlsplit(urljoin("http://localhost/login", response.headers["Location"]))
    assert (resolved.scheme, resolved.netloc) == ("http", "localhost"), response.headers["Location"]


def test_login_follows_a_same_site_next(client, make_host):
    host = make_host()
    response = client.post_raw("/login?next=/services", data={
        "email": host.email, "password": PASSWORD, "csrf_token": client.token("/login")})
    assert response.headers["Location"] == "/services"


# --- webhook ----------------------------------------------------------------------------------------

def signed(app, body: dict, *, timestamp: float | None = None) -> tuple[bytes, dict]:
    """A request body and headers as Zoom signs them, computed here (not by the code under test):
    ``v0=`` + hex HMAC-SHA256, keyed with the Secret Token, of ``v0:<timestamp>:<raw body>``."""
    raw = json.dumps(body).encode()
    ts = str(int(time.time() if timestamp is None else timestamp))
    digest = hmac.new(app.config["ZOOM_WEBHOOK_SECRET_TOKEN"].encode(), b"v0:" + ts.encode() + b":" + raw,
                      hashlib.sha256).hexdigest()
    return raw, {"x-zm-request-timestamp": ts, "x-zm-signature": f"v0={digest}"}


def post_signed(client, raw: bytes, headers: dict):
    return client.post_raw("/zoom/webhook", data=raw, content_type="application/json", headers=headers)


def test_webhook_refuses_forged_stale_and_reserialised_requests(app, client):
    body = {"event": "app_deauthorized", "payload": {"user_id": "someone", "account_id": "a"}}
    raw, headers = signed(app, body)
    good_signature = headers["x-zm-signature"]
    forged = [
        {},  # no headers at all
        {"x-zm-signature": good_signature},  # no timestamp
        {"x-zm-request-timestamp": headers["x-zm-request-timestamp"]},  # no signature
        {**headers, "x-zm-signature": "v0=" + "0" * 64},
        {**headers, "x-zm-signature": "v0=not-hex"},
        {**headers, "x-zm-signature": good_signature.upper()},
        {**headers, "x-zm-signature": good_signature[3:]},  # without "v0="
        {**headers, "x-zm-request-timestamp": "soon"},
    ]
    for bad in forged:
        assert post_signed(client, raw, bad).status_code == 401, bad
    for skew in (-301, 301):  # older or newer than 5 minutes
        assert post_signed(client, *signed(app, body, timestamp=time.time() + skew)).status_code == 401
    # The signature covers the raw bytes: the same JSON re-serialised does not verify.
    assert post_signed(client, json.dumps(body, indent=1).encode(), headers).status_code == 401
    assert get_queue().count == 0


def test_a_replayed_deauthorization_cannot_unlink_the_new_link(app, client, link_zoom, make_host, zoom, run_jobs,
                                                              smtp):
    host = make_host()
    link_zoom(host)
    user_id = db.session.query(ZoomConnection).one().zoom_user_id
    raw, headers = signed(app, {"event": "app_deauthorized", "payload": {"user_id": user_id, "account_id": "a"}})
    assert post_signed(client, raw, {**headers, "x-zm-request-id": "r1"}).status_code == 204
    run_jobs()
    assert db.session.query(ZoomConnection).count() == 0
    client.post("/logout", form_url="/dashboard")
    link_zoom(host)  # the host links again within the 5 minutes …
    # … and someone who captured the first request sends it again (with any request id).
    for request_id in ("r1", "r2", None):
        replay = {**headers, "x-zm-request-id": request_id} if request_id else headers
        response = post_signed(client, raw, replay)
        assert response.status_code == 200 and response.json == {"status": "duplicate"}
    assert get_queue().count == 0
    run_jobs()
    assert db.session.query(ZoomConnection).one().is_active
    smtp.wait_for(1)
    wait_until(mail_settled)  # nothing else will come
    assert [m["Subject"] for m in smtp.messages].count("Zoom連携が解除されました") == 1


def test_webhook_url_validation_is_answered_every_time(app, client):
    raw, headers = signed(app, {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    encrypted = hmac.new(app.config["ZOOM_WEBHOOK_SECRET_TOKEN"].encode(), b"abc", hashlib.sha256).hexdigest()
    expected = {"plainToken": "abc", "encryptedToken": encrypted}
    assert post_signed(client, raw, headers).json == expected
    assert post_signed(client, raw, headers).json == expected


# --- sessions -----------------------------------------------------------------------------------------

def cookie(response, name: str) -> str:
    return next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(name + "="))


def test_production_forces_https_with_hsts_and_secure_cookies(production_app, make_host):
    host = make_host()
    client = production_app.test_client()
    plain = client.get("/login")
    assert plain.status_code == 302 and plain.headers["Location"] == "https://localhost/login"
    assert client.get("/healthz").status_code == 200  # the load balancer's plain-http probe
    page = client.get("/login", base_url="https://localhost")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))[1]
    form = {"email": host.email, "password": PASSWORD, "remember": "y", "csrf_token": token}
    # Over https Flask-WTF also wants a same-site Referer.
    assert client.post("/login", data=form, base_url="https://localhost").status_code == 400
    response = client.post("/login", data=form, base_url="https://localhost",
                           headers={"Referer": "https://localhost/login"})
    assert response.status_code == 302
    for name in ("__Host-session", "__Host-remember_token"):  # the prefix: test_auth_hardening
        flags = cookie(response, name)
        assert "; Secure" in flags and "; HttpOnly" in flags and "; SameSite=Lax" in flags, flags


def test_session_cookie_flags_in_development(client):
    flags = cookie(client.get("/login"), "session")
    assert "; HttpOnly" in flags and "; SameSite=Lax" in flags and "; Secure" not in flags  # http in dev


def test_login_starts_a_new_session(app, client, make_host):
    host = make_host()
    client.get("/login")
    with client.raw.session_transaction() as session:
        session["planted"] = "by an attacker"  # session fixation: a session prepared before login
    before = client.raw.get_cookie("session").value
    assert client.post("/login", {"email": host.email, "password": PASSWORD}).status_code == 302
    after = client.raw.get_cookie("session").value
    assert after != before
    with client.raw.session_transaction() as session:
        assert "planted" not in session and session["_user_id"] == host.session_token
    # The pre-login session is not a logged-in one.
    old = Browser(app.test_client())
    old.raw.set_cookie("session", before)
    assert old.get("/dashboard").status_code == 302


def test_a_session_captured_before_logout_is_dead_after_it(app, client, login, make_host):
    login(make_host())
    captured = client.raw.get_cookie("session").value
    client.post("/logout", form_url="/dashboard")
    replay = Browser(app.test_client())
    replay.raw.set_cookie("session", captured)
    assert replay.get("/dashboard").status_code == 302


def test_login_throttle_is_not_bypassed_by_spelling_the_email_differently(client, make_host, app):
    make_host(email="throttle@example.com")
    variants = ["throttle@example.com", "THROTTLE@example.com", " Throttle@Example.com "]
    for n in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        client.post("/login", {"email": variants[n % len(variants)], "password": "wrong"})
    page = client.post("/login", {"email": "Throttle@EXAMPLE.com", "password": PASSWORD}).get_data(as_text=True)
    assert "しばらくログインできません" in page
    assert client.get("/dashboard").status_code == 302


# --- security headers ------------------------------------------------------------------------------

def csp(response) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in
            response.headers["Content-Security-Policy"].split("; ")}


def test_every_page_sends_a_strict_csp_and_the_security_headers(app, client, login, make_host):
    anonymous = client.get("/login")
    login(make_host())
    static = client.get("/static/notes.js")
    static.close()
    for response in (anonymous, client.get("/dashboard"), static, client.get("/nowhere")):
        policy = csp(response)
        assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
        assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        # ON/relink POSTs redirect to the video tools' consent pages: their origins, nothing else.
        zoom, google = (urlsplit(app.config[name]) for name in ("ZOOM_OAUTH_BASE_URL", "GOOGLE_AUTHORIZE_URL"))
        assert policy["form-action"] == f"'self' {zoom.scheme}://{zoom.netloc} {google.scheme}://{google.netloc}"
        assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in response.headers  # plain http in tests


def test_page_templates_have_no_inline_script():
    """The CSP forbids inline JavaScript: keep it out of the templates (email templates are not pages)."""
    root = Path(__file__).resolve().parent.parent / "app" / "templates"
    for path in root.rglob("*.html"):
        if "email" in path.relative_to(root).parts:
            continue
        source = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source), path
        assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", source, re.IGNORECASE), path  # onclick= …
        assert "javascript:" not in source.lower(), path


@pytest.mark.browser
def test_pages_work_under_the_csp_without_violations(page, live_server, make_host, make_service, make_slot,
                                                     make_booking):
    host = make_host(email="csp@example.com")
    service = make_service(host, title="CSP教室", kind="class_event", venue="manual_url")
    make_booking(make_slot(service), "生徒", "student@example.com")
    make_service(host, title="別の教室", kind="class_event", venue="manual_url")
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda error: violations.append(str(error)))

    page.goto("/login")
    page.get_by_label("メールアドレス").fill(host.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/dashboard")

    # The notes editor's live preview (notes.js, a fetch with the CSRF header, srcdoc update).
    page.goto(f"/services/{service.id}/notes")
    page.get_by_label("ホストからの連絡事項").fill("当日は筆ペンをご用意ください。")
    page.wait_for_function("() => document.getElementById('preview-text').textContent.includes('筆ペン')")
    frame = page.locator("#preview-html").element_handle().content_frame()
    frame.wait_for_function("() => document.body.textContent.includes('筆ペン')")
    # The email's inline styles apply inside the sandboxed srcdoc frame (it inherits the page's CSP).
    assert frame.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(244, 245, 247)"

    # The composer's service select submits itself (autosubmit.js instead of an inline onchange).
    page.goto("/messages/new")
    page.get_by_label("サービス").select_option(label="CSP教室")
    page.wait_for_url(f"**/messages/new?service_id={service.id}")
    page.get_by_text("予約1名").wait_for()
    assert violations == []


@pytest.mark.browser
def test_staff_email_gallery_renders_under_the_csp(page, live_server, make_host):
    staff = make_host(email="ops@example.com", name="運営", is_staff=True)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto("/login")
    page.get_by_label("メールアドレス").fill(staff.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/staff/")  # staff land on their own home
    page.goto("/staff/templates?kind=booking_confirmation")
    frame = page.locator("iframe.frame-phone").first.element_handle().content_frame()
    frame.wait_for_function("() => document.body.textContent.length > 0")
    assert frame.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(244, 245, 247)"
    assert violations == []


# --- secrets ------------------------------------------------------------------------------------------

def stored_tokens(connection: ZoomConnection) -> set[str]:
    return {crypto.decrypt(connection.access_token_enc), crypto.decrypt(connection.refresh_token_enc)}


def redis_dump() -> bytes:
    """Every Redis string and hash value, RQ's compressed job data unpacked."""
    redis, chunks = get_redis(), []
    for key in redis.scan_iter():
        kind = redis.type(key)
        if kind == b"string":
            chunks.append(redis.get(key) or b"")
        elif kind == b"hash":
            for field, value in redis.hgetall(key).items():
                if field == b"data":
                    try:
                        value = zlib.decompress(value)
                    except zlib.error:
                        pass
                chunks.append(value)
    return b"".join(chunks)


def test_tokens_never_appear_in_logs_database_or_redis(app, caplog, monkeypatch, client, link_zoom, make_host, zoom):
    # Every logger at every level. Alembic's fileConfig (run by the migrations at session start)
    # disabled the loggers that existed then (the app's own, urllib3, authlib): enable them again.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)
    caplog.set_level(logging.DEBUG)
    host = make_host()
    link_zoom(host)
    connection = db.session.query(ZoomConnection).one()
    tokens = stored_tokens(connection)
    assert link.access_token(connection.id, force_refresh=True) not in tokens  # rotated
    db.session.rollback()
    connection = db.session.query(ZoomConnection).one()
    tokens |= stored_tokens(connection)
    link.api_for(connection.id).users_me()
    client.get("/settings/zoom")
    assert len(tokens) == 4
    secrets = tokens | {app.config["ZOOM_CLIENT_SECRET"], app.config["ZOOM_WEBHOOK_SECRET_TOKEN"]}

    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert caplog.records  # the capture did see the flow
    for secret in secrets:
        assert secret not in logged
    rows = "".join(str(row) for rows in database_rows().values() for row in rows)
    assert connection.access_token_enc in rows
    files = b""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        files = b"".join(p.read_bytes() for p in (Path(path), Path(path + "-wal")) if p.exists())
    in_redis = redis_dump()
    for token in tokens:
        assert token not in rows and token.encode() not in files and token.encode() not in in_redis
