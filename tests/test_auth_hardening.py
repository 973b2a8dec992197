"""Authentication at ASVS 5.0 level 2 (issue 16): login throttling per account and per address with
backoff, the client's address behind a trusted proxy, no account enumeration, email confirmation
before a host's public page takes bookings, changing a password, the password rule, idle sessions
and ``__Host-`` cookies, and the staff's second factor.

Through the real app, Redis, SMTP server, migrations and CLI. Expected values are written out
(minutes, subjects, cookie names), never computed by the code under test; TOTP codes are computed
from the secret the page shows, as an authenticator app does.
"""
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from werkzeug.security import generate_password_hash

from app import clock, create_app
from app.warmup import warm_up
from app.extensions import db
from app.models import Booking, Delivery, User
from config import Config, ProductionConfig, TestConfig
from tests.conftest import Browser as SharedBrowser, body_text
from tests.factories import PASSWORD

WRONG = "not-the-password-1"
NEW = "a-new-long-passphrase"
WRONG_ANSWER = "メールアドレスまたはパスワードが正しくありません"
THROTTLED = "しばらくログインできません"


class Browser(SharedBrowser):
    """A browser with its own cookies and address, whose every request loads its user afresh.

    The test's requests share one app context, and Flask-Login caches the request's user in ``g``:
    left there, one browser's login would answer for another's requests (or a dead session's).
    Every request comes from ``address`` (strong session protection binds a login to it).
    """

    def __init__(self, client, address: str = "192.0.2.10"):
        super().__init__(client)
        self.address = address

    def _from(self, kwargs: dict) -> dict:
        kwargs.setdefault("environ_base", {"REMOTE_ADDR": self.address})
        return kwargs

    def get(self, url, **kwargs):
        return super().get(url, **self._from(kwargs))

    def post_raw(self, url, **kwargs):
        return super().post_raw(url, **self._from(kwargs))

    def post(self, url, data=None, *, form_url=None, **kwargs):
        return super().post(url, data, form_url=form_url, **self._from(kwargs))



@pytest.fixture
def browser(app):
    """A new browser each call (from ``address``)."""
    return lambda address="192.0.2.10": Browser(app.test_client(), address)


def text(response) -> str:
    return response.get_data(as_text=True)


def log_in(client, email: str, password: str, **extra):
    """POST the login form (``extra``: more fields, or ``headers``)."""
    headers = extra.pop("headers", None)
    return client.post("/login", {"email": email, "password": password, **extra},
                       **({"headers": headers} if headers else {}))


def sign_up(client, email: str, password: str = NEW, name: str = "新しい ホスト"):
    return client.post("/signup", {"email": email, "display_name": name, "password": password, "confirm": password})


def link_in(message, path: str) -> str:
    """The path of the first link to ``path`` in an email's text part."""
    return urlsplit(re.search(rf"https?://\S+{path}\S*", body_text(message)).group(0)).path


# --- 1. throttling per account and per address, with backoff; the address behind a proxy ------------------

def test_one_password_sprayed_over_40_accounts_from_one_address_is_stopped(app, make_host, browser):
    sprayed = "Summer-sale-2026"
    hosts = [make_host() for _ in range(40)]
    victim = db.session.get(User, hosts[29].id)  # the 30th account really uses the sprayed password
    victim.password_hash = generate_password_hash(sprayed, method="pbkdf2:sha256:1000")
    db.session.commit()
    attacker = browser("203.0.113.9")
    answers = []
    for n, host in enumerate(hosts):
        # A made-up X-Forwarded-For changes nothing: no proxy is trusted by default.
        answers.append(log_in(attacker, host.email, sprayed, headers={"X-Forwarded-For": f"198.51.100.{n}"})
                       .status_code)
    assert answers[:20] == [200] * 20  # 「メールアドレスまたはパスワードが正しくありません」
    assert set(answers[20:]) == {429}  # from the 21st account on, every attempt waits
    assert attacker.get("/dashboard").status_code == 302  # never in, not even into the 30th account
    # Hosts elsewhere log in as usual.
    assert log_in(browser("192.0.2.44"), hosts[0].email, PASSWORD).status_code == 302


def test_past_the_allowance_each_attempt_waits_twice_as_long(make_host, browser):
    host = make_host()
    client = browser()
    for _ in range(5):
        assert WRONG_ANSWER in text(log_in(client, host.email, WRONG))
    waiting = log_in(client, host.email, PASSWORD)  # even the right password waits its turn
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "60"
    assert "しばらくログインできません。1分ほど待ってから、もう一度お試しください。" in text(waiting)
    assert client.get("/dashboard").status_code == 302
    clock.advance(timedelta(seconds=61))
    assert WRONG_ANSWER in text(log_in(client, host.email, WRONG))  # allowed again (and wrong again)
    waiting = log_in(client, host.email, PASSWORD)
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "120"
    assert "2分ほど待って" in text(waiting)
    clock.advance(timedelta(seconds=121))
    assert log_in(client, host.email, PASSWORD).status_code == 302


def test_guesses_from_many_addresses_slow_the_account_down(make_host, browser):
    host = make_host()
    for n in range(20):
        assert WRONG_ANSWER in text(log_in(browser(f"203.0.113.{n + 1}"), host.email, WRONG))
    assert log_in(browser("198.51.100.7"), host.email, PASSWORD).status_code == 429


@pytest.fixture
def behind_proxy(app, database_url, redis_url):
    """The app behind one load balancer it trusts (``TRUSTED_PROXIES=1``), on the test database and Redis."""
    proxied = create_app(TestConfig, TRUSTED_PROXIES=1, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis_url,
                         SMTP_PORT=app.config["SMTP_PORT"])
    yield proxied
    with proxied.app_context():
        db.session.remove()
        db.engine.dispose()


def test_behind_a_trusted_proxy_a_strangers_guesses_do_not_lock_the_host_out(behind_proxy, make_host):
    host = make_host()
    balancer = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the load balancer

    def attempt(client, password, client_address):
        return client.post("/login", {"email": host.email, "password": password}, environ_base=balancer,
                           headers={"X-Forwarded-For": client_address})

    stranger = Browser(behind_proxy.test_client())
    for _ in range(6):
        attempt(stranger, WRONG, "203.0.113.9")
    assert attempt(stranger, PASSWORD, "203.0.113.9").status_code == 429  # the stranger waits
    owner = Browser(behind_proxy.test_client())
    assert attempt(owner, PASSWORD, "198.51.100.7").status_code == 302  # the owner does not


# --- 2. no account enumeration ----------------------------------------------------------------------------

def test_a_failed_login_does_the_same_hashing_for_an_unknown_email_as_for_a_known_one(
        app, make_host, browser, monkeypatch):
    """What makes a failed login slow is the password hash: both answers derive exactly one, with
    the same method and cost (a timed comparison belongs in a benchmark: on a busy box it flakes)."""
    import werkzeug.security

    derived = []
    real = werkzeug.security.hashlib.pbkdf2_hmac

    def counting(name, password, salt, iterations, *args):
        derived.append((name, iterations))
        return real(name, password, salt, iterations, *args)

    host = make_host()
    client = browser()
    token = client.token("/login")
    warm_up(app, templates="auth/")  # what a web worker does before it serves (makes the dummy hash)
    monkeypatch.setattr(werkzeug.security.hashlib, "pbkdf2_hmac", counting)
    work = {}
    for n, (kind, email) in enumerate((("known", host.email), ("unknown", "nobody@example.com"))):
        derived.clear()
        response = client.post_raw("/login", data={"email": email, "password": WRONG, "csrf_token": token},
                                   environ_base={"REMOTE_ADDR": f"192.0.2.{n + 1}"})
        assert WRONG_ANSWER in text(response)
        work[kind] = list(derived)
    assert work["known"] == work["unknown"] == [("sha256", 1000)], work  # TestConfig's pbkdf2:sha256:1000


def test_signing_up_with_a_registered_email_answers_as_for_a_new_one_and_emails_its_owner(
        app, make_host, browser, run_jobs, smtp):
    make_host(email="taken@example.com", name="先にいたホスト")
    answers = {}
    for email in ("taken@example.com", "fresh@example.com"):
        client = browser()
        response = sign_up(client, email, name="後から来た人")
        page = text(client.get(response.headers.get("Location", "/signup")))
        answers[email] = (response.status_code, response.headers.get("Location"), page.replace(email, "EMAIL"))
    assert answers["taken@example.com"] == answers["fresh@example.com"]
    status, location, page = answers["taken@example.com"]
    assert (status, location) == (302, "/signup/sent") and "すでに登録" not in page
    assert "EMAIL 宛に、登録についてのメールをお送りしました" in page

    run_jobs()
    smtp.wait_for(2)
    [notice] = smtp.to("taken@example.com")
    assert notice["Subject"] == "このメールアドレスはすでに登録されています"
    base = app.config["APP_BASE_URL"]
    assert f"{base}/login" in body_text(notice) and f"{base}/reset" in body_text(notice)
    assert "先にいたホスト 様" in body_text(notice)
    [welcome] = smtp.to("fresh@example.com")
    assert welcome["Subject"] == "メールアドレスの確認のお願い"
    # The registered account is as it was: its own password works, the one typed at signup does not.
    db.session.rollback()
    assert db.session.query(User).filter_by(email="taken@example.com").one().display_name == "先にいたホスト"
    assert WRONG_ANSWER in text(log_in(browser(), "taken@example.com", NEW))
    assert log_in(browser("192.0.2.20"), "taken@example.com", PASSWORD).status_code == 302
    # Signing up again with it does not turn the form on the owner's mailbox.
    sign_up(browser(), "taken@example.com")
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(to_email="taken@example.com").count() == 1


# --- 3. email confirmation before the public page takes bookings ---------------------------------------------

def test_a_new_host_confirms_the_email_before_the_public_page_takes_bookings(
        make_service, make_slot, browser, run_jobs, smtp):
    host_browser = browser()
    assert sign_up(host_browser, "new-host@example.com").headers["Location"] == "/signup/sent"
    assert log_in(host_browser, "new-host@example.com", NEW).status_code == 302
    dashboard = text(host_browser.get("/dashboard"))
    assert "メールアドレスの確認が済んでいません。" in dashboard and "確認メールを再送" in dashboard

    db.session.rollback()
    host = db.session.query(User).filter_by(email="new-host@example.com").one()
    assert host.email_verified_at is None
    slot = make_slot(make_service(host, venue="manual_url"))
    public = f"/s/{slot.service.public_id}"
    guest = browser()
    page = text(guest.get(public))
    assert "現在お申し込みを受け付けていません" in page and 'name="guest_email"' not in page
    # A booking posted anyway (a page opened earlier, a bot) is refused the same way.
    refused = guest.post_raw(public, data={"slot_id": str(slot.id), "guest_name": "佐藤 一郎",
                                           "guest_email": "ichiro@example.com", "csrf_token": guest.token("/login")})
    assert refused.status_code == 403 and "現在お申し込みを受け付けていません" in text(refused)
    assert db.session.query(Booking).count() == 0

    run_jobs()
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "メールアドレスの確認のお願い" and "有効期限7日間" in body_text(mail)
    path = link_in(mail, "/verify/")
    assert "メールアドレスを確認する" in text(host_browser.get(path))  # a GET (a mail scanner) only asks
    db.session.rollback()
    assert db.session.get(User, host.id).email_verified_at is None
    assert host_browser.post(path, {}).headers["Location"] == "/dashboard"
    dashboard = text(host_browser.get("/dashboard"))
    assert "メールアドレスを確認しました" in dashboard and "確認が済んでいません" not in dashboard

    booked = guest.post(public, {"slot_id": str(slot.id), "guest_name": "佐藤 一郎", "guest_email": "ichiro@example.com",
                                 "confirm": "1"})
    assert booked.status_code == 302, text(booked)
    assert db.session.query(Booking).count() == 1


def test_resending_the_confirmation_sends_one_link_per_few_minutes(make_host, browser, run_jobs, smtp):
    host = make_host(email="unconfirmed@example.com", verified=False)
    client = browser()
    log_in(client, host.email, PASSWORD)
    page = text(client.post("/verify/resend", {}, form_url="/dashboard", follow_redirects=True))
    assert "確認メールを unconfirmed@example.com にお送りしました。" in page
    page = text(client.post("/verify/resend", {}, form_url="/dashboard", follow_redirects=True))
    assert "確認メールは先ほどお送りしました。" in page
    db.session.rollback()
    assert db.session.query(Delivery).filter_by(kind="email_verification").count() == 1
    run_jobs()
    [mail] = smtp.wait_for(1)
    client.post(link_in(mail, "/verify/"), {})
    db.session.rollback()
    assert db.session.get(User, host.id).email_verified_at is not None


def test_a_forged_or_foreign_confirmation_link_confirms_nothing(make_host, browser):
    host = make_host(email="unconfirmed@example.com", verified=False)
    client = browser()
    for token in ("garbage", "eyJpZCI6MX0.forged.signature"):
        response = client.get(f"/verify/{token}", follow_redirects=True)
        assert "この確認リンクは無効か、有効期限が切れています" in text(response)
    db.session.rollback()
    assert db.session.get(User, host.id).email_verified_at is None


def test_seed_demo_accounts_are_confirmed_and_the_demo_staff_logs_in_with_a_password(app, browser):
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    db.session.rollback()
    users = db.session.query(User).all()
    assert users and all(user.email_verified_at is not None for user in users)
    assert log_in(browser(), "staff@example.com", "demo-pass-2026").headers["Location"] == "/staff/"


# --- 4. changing the password ---------------------------------------------------------------------------------

def test_changing_the_password_ends_other_sessions_keeps_this_one_and_tells_the_host(
        app, make_host, browser, run_jobs, smtp):
    host = make_host(email="changer@example.com")
    here, elsewhere = browser(), browser("192.0.2.77")
    assert log_in(here, host.email, PASSWORD, remember="y").status_code == 302
    assert log_in(elsewhere, host.email, PASSWORD, remember="y").status_code == 302

    def change(current, new, confirm=None):
        return here.post("/settings/account/password",
                         {"current_password": current, "password": new, "confirm": confirm or new},
                         form_url="/settings/account")

    assert "現在のパスワードが正しくありません。" in text(change(WRONG, NEW))
    assert "よく使われていて推測されやすいため" in text(change(PASSWORD, "password123"))
    assert "パスワードが一致しません" in text(change(PASSWORD, NEW, confirm=NEW + "x"))
    done = change(PASSWORD, NEW)
    assert done.status_code == 302 and done.headers["Location"] == "/settings/account"
    assert "ほかの端末やブラウザでのログインはすべて終了しました" in text(here.get("/settings/account"))

    assert here.get("/dashboard").status_code == 200  # this browser stays logged in
    assert elsewhere.get("/dashboard").status_code == 302  # the other one is logged out,
    elsewhere.raw.delete_cookie("session")
    assert elsewhere.get("/dashboard").status_code == 302  # its remember-me cookie too
    here.raw.delete_cookie("session")  # this browser's remember-me cookie was renewed
    assert here.get("/dashboard").status_code == 200 and here.get("/dashboard").status_code == 200

    run_jobs()
    [notice] = smtp.wait_for(1)
    assert notice["Subject"] == "パスワードが変更されました" and "changer@example.com" in notice["To"]
    assert "お心当たりがない場合" in body_text(notice) and f"{app.config['APP_BASE_URL']}/reset" in body_text(notice)
    assert log_in(browser("192.0.2.78"), host.email, NEW).status_code == 302
    assert WRONG_ANSWER in text(log_in(browser("192.0.2.79"), host.email, PASSWORD))


# --- 5. the password rule, wherever a password is set -----------------------------------------------------------

REFUSED_PASSWORDS = (("abc-12345", "パスワードは10文字以上で入力してください。"),
                     ("password123", "よく使われていて推測されやすいため、使えません"),
                     ("1qaz2wsx3edc", "よく使われていて推測されやすいため、使えません"),
                     ("zzzzzzzzzzzz", "よく使われていて推測されやすいため、使えません"),
                     ("typed@example.com", "メールアドレスと同じパスワードは使えません"))


def test_short_and_common_passwords_are_refused_wherever_a_password_is_set(make_host, browser, run_jobs, smtp):
    client = browser()
    for password, why in REFUSED_PASSWORDS:
        page = text(sign_up(client, "typed@example.com", password=password, name="入力した 名前"))
        assert why in page, password
        # What was typed stays, passwords aside.
        assert 'value="typed@example.com"' in page and 'value="入力した 名前"' in page
        assert not re.search(r'<input[^>]*type="password"[^>]*value="[^"]', page)
    db.session.rollback()
    assert db.session.query(User).count() == 0

    host = make_host(email="forgetful@example.com")
    client.post("/reset", {"email": host.email})
    run_jobs()
    path = link_in(smtp.wait_for(1)[0], "/reset/")
    for password, why in REFUSED_PASSWORDS[:3]:
        assert why in text(client.post(path, {"password": password, "confirm": password})), password
    page = text(client.post(path, {"password": "forgetful@example.com", "confirm": "forgetful@example.com"}))
    assert "メールアドレスと同じパスワードは使えません" in page
    assert client.post(path, {"password": NEW, "confirm": NEW}).status_code == 302


def test_the_common_password_list_ships_with_the_app():
    from pathlib import Path

    listed = [line for line in (Path(__file__).parent.parent / "app" / "auth" / "common_passwords.txt")
              .read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    assert len(listed) > 1500 and all(len(entry) >= 10 for entry in listed)
    assert {"1234567890", "qwertyuiop", "password123"} <= set(listed)


# --- 6. idle sessions, __Host- cookies ----------------------------------------------------------------------------

def test_an_idle_session_is_logged_out_and_remember_me_still_holds(make_host, browser):
    host = make_host()
    client = browser()
    log_in(client, host.email, PASSWORD)
    clock.advance(timedelta(minutes=100))
    assert client.get("/dashboard").status_code == 200  # active within 3 hours: still in
    clock.advance(timedelta(minutes=100))
    assert client.get("/dashboard").status_code == 200  # 200 minutes since login, 100 idle
    clock.advance(timedelta(minutes=181))
    response = client.get("/dashboard")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "一定時間操作がなかったため、ログアウトしました" in text(client.get(response.headers["Location"]))
    assert client.get("/dashboard").status_code == 302

    remembered = browser("192.0.2.30")
    log_in(remembered, host.email, PASSWORD, remember="y")
    clock.advance(timedelta(minutes=181))
    assert remembered.get("/dashboard").status_code == 200  # "ログインしたままにする" holds, as before
    assert remembered.get("/dashboard").status_code == 200  # and on the request after


def test_production_cookies_carry_the_host_prefix(production_app, make_host):
    host = make_host()
    client = production_app.test_client()
    page = text(client.get("/login", base_url="https://localhost"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    response = client.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                           data={"email": host.email, "password": PASSWORD, "remember": "y", "csrf_token": token})
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("__Host-session", "__Host-remember_token"):
        flags = [part.strip() for part in next(c for c in cookies if c.startswith(name + "=")).split(";")]
        assert "Secure" in flags and "Path=/" in flags and "HttpOnly" in flags, flags
        assert not any(flag.lower().startswith("domain=") for flag in flags), flags
    assert not any(c.startswith(("session=", "remember_token=")) for c in cookies)
    assert client.get("/dashboard", base_url="https://localhost").status_code == 200


# --- 7. the staff's second factor ---------------------------------------------------------------------------------

@pytest.fixture
def totp_required(app, monkeypatch):
    """Production's rule, in the test app."""
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_TOTP", True)


def shown_secret(page: str) -> str:
    return re.search(r"<code>([A-Z2-7 ]+)</code>", page).group(1).replace(" ", "")


def test_the_second_factor_is_required_in_production_only():
    assert ProductionConfig.STAFF_REQUIRE_TOTP is True
    assert Config.STAFF_REQUIRE_TOTP is False and TestConfig.STAFF_REQUIRE_TOTP is False


def test_staff_set_up_an_authenticator_app_then_need_its_code_at_every_login(app, make_host, browser, totp_required):
    staff = make_host(email="ops@example.com", is_staff=True)
    client = browser()
    response = log_in(client, staff.email, PASSWORD)
    assert response.headers["Location"] == "/login/code"
    assert client.get("/staff/templates").status_code == 302  # the password alone is not a login
    assert client.get("/login/code").headers["Location"] == "/login/code/setup"
    page = text(client.get("/login/code/setup"))
    assert 'src="data:image/svg+xml' in page  # the QR code, drawn on the server
    secret = shown_secret(page)
    assert secret == shown_secret(text(client.get("/login/code/setup")))  # a reload shows the same one
    assert len(secret) == 32  # 160 bits

    wrong = client.post("/login/code/setup", {"code": "000000"})
    assert "確認コードが正しくありません" in text(wrong)
    code = pyotp.TOTP(secret).at(clock.now())
    done = client.post("/login/code/setup", {"code": code})
    assert done.headers["Location"] == "/dashboard"
    assert client.get("/staff/templates").status_code == 200
    # Encrypted at rest with the app's Fernet key.
    db.session.rollback()
    stored = db.session.execute(sa.text("SELECT totp_secret FROM users WHERE id = :id"), {"id": staff.id}).scalar()
    assert secret not in stored
    assert Fernet(app.config["TOKEN_ENCRYPTION_KEY"].split(",")[0]).decrypt(stored.encode()).decode() == secret

    # Next login: password, then the code; the code just used is not accepted twice.
    client.post("/logout", form_url="/staff/")  # staff land on the staff home
    assert log_in(client, staff.email, PASSWORD).headers["Location"] == "/login/code"
    assert "確認コードが正しくありません" in text(client.post("/login/code", {"code": code}))
    clock.advance(timedelta(seconds=30))
    done = client.post("/login/code", {"code": pyotp.TOTP(secret).at(clock.now())})
    assert done.headers["Location"] == "/dashboard"
    assert client.get("/staff/templates").status_code == 200

    # Hosts are not asked for a code.
    assert log_in(browser("192.0.2.50"), make_host().email, PASSWORD).headers["Location"] == "/dashboard"


def test_wrong_codes_are_throttled_like_wrong_passwords(make_host, browser, totp_required):
    staff = make_host(email="ops@example.com", is_staff=True)
    client = browser()
    log_in(client, staff.email, PASSWORD)
    client.get("/login/code/setup")
    for _ in range(5):
        assert "確認コードが正しくありません" in text(client.post("/login/code/setup", {"code": "123456"}))
    # A new password login does not give the guesser a fresh allowance.
    log_in(client, staff.email, PASSWORD)
    waiting = client.post("/login/code/setup", {"code": "123456"})
    assert waiting.status_code == 429 and THROTTLED in text(waiting)


def test_a_staff_session_without_the_second_factor_is_logged_out_when_it_becomes_required(
        app, make_host, browser, monkeypatch):
    staff = make_host(email="ops@example.com", is_staff=True)
    client = browser()
    log_in(client, staff.email, PASSWORD, remember="y")  # password only, as in development
    assert client.get("/staff/templates").status_code == 200
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_TOTP", True)
    response = client.get("/staff/templates")
    assert response.status_code == 302
    assert "確認コードの入力が必要です" in text(client.get(response.headers["Location"]))
    client.raw.delete_cookie("session")
    assert client.get("/staff/templates").status_code == 302  # the remember-me cookie is no way around it


def test_a_lost_authenticator_is_reset_from_the_command_line(app, make_host, browser, totp_required):
    staff = make_host(email="ops@example.com", is_staff=True)
    client = browser()
    log_in(client, staff.email, PASSWORD)
    secret = shown_secret(text(client.get("/login/code/setup")))
    client.post("/login/code/setup", {"code": pyotp.TOTP(secret).at(clock.now())})
    result = app.test_cli_runner().invoke(args=["reset-staff-totp", "ops@example.com"])
    assert result.exit_code == 0, result.output
    assert client.get("/staff/templates").status_code == 302  # its sessions ended too
    assert log_in(browser("192.0.2.60"), staff.email, PASSWORD).headers["Location"] == "/login/code"
    assert app.test_cli_runner().invoke(args=["reset-staff-totp", "nobody@example.com"]).exit_code != 0
