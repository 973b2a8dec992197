"""Host accounts: signup, login (throttled), logout, password reset by email, cookies.

The hardening of issue 16 (enumeration, confirmation, password rule, second factor, …) is in
``test_auth_hardening.py``.
"""
from app.extensions import db
from app.models import User
from tests.conftest import body_text
from tests.factories import PASSWORD


def test_signup_sends_a_confirmation_email_and_the_host_can_log_in_meanwhile(client, run_jobs, smtp):
    response = client.post("/signup", {"email": "New@Example.com", "display_name": "新しいホスト",
                                       "password": "long-enough-1", "confirm": "long-enough-1"})
    assert response.headers["Location"] == "/signup/sent"
    assert "new@example.com 宛に、登録についてのメールをお送りしました" in client.get("/signup/sent").get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302  # signing up is not logging in (see test_auth_hardening)
    user = db.session.query(User).one()
    assert user.email == "new@example.com" and user.email_verified_at is None
    assert client.post("/login", {"email": "new@example.com", "password": "long-enough-1"}).status_code == 302
    page = client.get("/dashboard").get_data(as_text=True)
    assert "新しいホストさんのダッシュボード" in page and "確認メールを再送" in page
    run_jobs()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "メールアドレスの確認のお願い" and "/verify/" in body_text(message)


def test_bad_signup_input_keeps_what_was_typed(client):
    response = client.post("/signup", {"email": "x@example.com", "display_name": "短い",
                                       "password": "short", "confirm": "other"})
    page = response.get_data(as_text=True)
    assert "10文字以上" in page and "パスワードが一致しません" in page
    assert 'value="x@example.com"' in page and 'value="短い"' in page
    assert db.session.query(User).count() == 0


def test_wrong_password_then_throttled(client, make_host, app):
    host = make_host()
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        page = client.post("/login", {"email": host.email, "password": "wrong"}).get_data(as_text=True)
        assert "メールアドレスまたはパスワードが正しくありません" in page
    response = client.post("/login", {"email": host.email, "password": PASSWORD})
    assert response.status_code == 429 and "しばらくログインできません" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302  # still logged out


def test_login_renews_session_and_cookie_flags(client, make_host):
    host = make_host()
    client.get("/login")
    response = client.post("/login", {"email": host.email, "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    remember = next(c for c in cookies if c.startswith("remember_token="))
    assert "HttpOnly" in remember


def test_logout_needs_post_with_csrf(client, login, make_host):
    login(make_host())
    assert client.get("/logout").status_code == 405
    assert client.post_raw("/logout").status_code == 400  # no CSRF token
    assert client.post_raw("/logout", data={"csrf_token": "forged"}).status_code == 400
    client.post("/logout", form_url="/dashboard")
    assert client.get("/dashboard").status_code == 302


def test_password_reset_by_email(client, make_host, run_jobs, smtp):
    host = make_host()
    client.post("/reset", {"email": host.email})
    client.post("/reset", {"email": "nobody@example.com"})  # same answer, no email
    run_jobs()
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "パスワード再設定のご案内"
    link = next(line for line in body_text(message).splitlines() if "/reset/" in line).strip()
    path = link[link.index("/reset/"):]
    client.post(path, {"password": "brand-new-pass", "confirm": "brand-new-pass"})
    assert client.post("/login", {"email": host.email, "password": "brand-new-pass"}).status_code == 302
    # The link works once only.
    client.post("/logout", form_url="/dashboard")
    assert client.get(path).status_code == 302
    assert "無効" in client.get(path, follow_redirects=True).get_data(as_text=True)


def test_open_redirect_after_login_is_refused(client, make_host):
    host = make_host()
    response = client.post_raw("/login?next=//evil.example/", data={
        "email": host.email, "password": PASSWORD, "csrf_token": client.token("/login")})
    assert response.headers["Location"] == "/dashboard"


def test_create_staff_command(app):
    result = app.test_cli_runner().invoke(args=["create-staff", "ops@example.com", "--password", "ops-pass-123"])
    assert "staff account created" in result.output
    assert db.session.query(User).filter_by(email="ops@example.com").one().is_staff


def test_healthz_checks_database_and_redis(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response.headers["X-Request-ID"] == "abc-123"
