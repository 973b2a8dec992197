"""Configuration: every value comes from the environment, with defaults for the embedded setup.

``Config`` runs the whole product on one machine (SQLite, local Redis, local SMTP sink,
local Zoom emulator). ``TestConfig`` is what the test suite builds on. ``ProductionConfig``
refuses to start with a development secret.
"""
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

DEV_SECRET_KEY = "dev-secret-key-change-me"
# A valid Fernet key used only for local development; production must set its own.
DEV_TOKEN_ENCRYPTION_KEY = "ZGV2LW9ubHktdG9rZW4ta2V5LTMyLWJ5dGVzLWxvbmc="
#: The local Zoom emulator's sandbox app (devtools/zoom_emulator/state.py). Both are published in
#: this repository: they may sign the emulator's requests, never a real Zoom's.
DEV_ZOOM_CLIENT_SECRET = "sandbox-client-secret"
DEV_ZOOM_WEBHOOK_SECRET_TOKEN = "sandbox-webhook-secret"
#: The local Google emulator's sandbox OAuth client (devtools/google_emulator), published likewise.
DEV_GOOGLE_CLIENT_SECRET = "sandbox-client-secret"


def env_str(name: str, default: str) -> str:
    """Read a string setting."""
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    """Read an integer setting; junk raises at start-up instead of misbehaving later."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean setting (1/0, true/false, yes/no, on/off)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean, got {raw!r}")


def uses_local_emulator(oauth_base_url: str, api_base_url: str) -> bool:
    """True when both URLs point at this machine (a local emulator) rather than the real platform."""
    def loopback(url: str) -> bool:
        host = urlsplit(url).hostname or ""
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    return loopback(oauth_base_url) and loopback(api_base_url)


class Config:
    """Defaults for the embedded, single-machine setup (`make run`)."""

    SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
    #: Fernet keys, comma separated; the first encrypts, all decrypt (rotation).
    TOKEN_ENCRYPTION_KEY = env_str("TOKEN_ENCRYPTION_KEY", DEV_TOKEN_ENCRYPTION_KEY)

    SQLALCHEMY_DATABASE_URI = env_str("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'app.db'}")
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6380/0")

    SMTP_HOST = env_str("SMTP_HOST", "127.0.0.1")
    SMTP_PORT = env_int("SMTP_PORT", 8025)
    SMTP_USERNAME = env_str("SMTP_USERNAME", "")
    SMTP_PASSWORD = env_str("SMTP_PASSWORD", "")
    SMTP_STARTTLS = env_bool("SMTP_STARTTLS", False)
    SMTP_TIMEOUT = env_int("SMTP_TIMEOUT", 30)
    MAIL_FROM = env_str("MAIL_FROM", "予約システム <no-reply@booking.test>")
    #: The envelope sender (Return-Path) of every email: delivery status notifications (bounces)
    #: come back here, and the bounce reader (``app/mail/bounces.py``) reads them. "" = MAIL_FROM's address.
    MAIL_BOUNCE_ADDRESS = env_str("MAIL_BOUNCE_ADDRESS", "")
    #: The platform's name in a guest email's From: 「<host>（<platform>）」 <MAIL_FROM's address>.
    PLATFORM_NAME = env_str("PLATFORM_NAME", "予約システム")
    #: Where the embedded SMTP sink stores what it receives (read by the staff mailbox page).
    MAILBOX_DIR = env_str("MAILBOX_DIR", str(INSTANCE_DIR / "mailbox"))

    APP_BASE_URL = env_str("APP_BASE_URL", "http://127.0.0.1:5000")

    #: Defaults are the local emulator's sandbox app (devtools/zoom_emulator).
    ZOOM_CLIENT_ID = env_str("ZOOM_CLIENT_ID", "sandbox-client-id")
    ZOOM_CLIENT_SECRET = env_str("ZOOM_CLIENT_SECRET", DEV_ZOOM_CLIENT_SECRET)
    ZOOM_WEBHOOK_SECRET_TOKEN = env_str("ZOOM_WEBHOOK_SECRET_TOKEN", DEV_ZOOM_WEBHOOK_SECRET_TOKEN)
    ZOOM_OAUTH_BASE_URL = env_str("ZOOM_OAUTH_BASE_URL", "http://127.0.0.1:5050")
    ZOOM_API_BASE_URL = env_str("ZOOM_API_BASE_URL", "http://127.0.0.1:5050/v2")

    #: Defaults are the local Google emulator (devtools/google_emulator, port 5070: browsers refuse 5060,
    #: a SIP port); the real Google is
    #: https://accounts.google.com/o/oauth2/v2/auth, https://oauth2.googleapis.com/token and /revoke,
    #: and https://www.googleapis.com/calendar/v3 (google-meet-facts §1, §3).
    GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID", "sandbox-client-id.apps.googleusercontent.test")
    GOOGLE_CLIENT_SECRET = env_str("GOOGLE_CLIENT_SECRET", DEV_GOOGLE_CLIENT_SECRET)
    GOOGLE_AUTHORIZE_URL = env_str("GOOGLE_AUTHORIZE_URL", "http://127.0.0.1:5070/o/oauth2/v2/auth")
    GOOGLE_TOKEN_URL = env_str("GOOGLE_TOKEN_URL", "http://127.0.0.1:5070/token")
    GOOGLE_REVOKE_URL = env_str("GOOGLE_REVOKE_URL", "http://127.0.0.1:5070/revoke")
    GOOGLE_CALENDAR_BASE_URL = env_str("GOOGLE_CALENDAR_BASE_URL", "http://127.0.0.1:5070/calendar/v3")
    #: Seconds a call to Google may take before it counts as unanswered (retried with the one policy).
    GOOGLE_HTTP_TIMEOUT = env_int("GOOGLE_HTTP_TIMEOUT", 10)

    BABEL_DEFAULT_LOCALE = "ja"
    BABEL_DEFAULT_TIMEZONE = "Asia/Tokyo"
    LANGUAGES = ("ja", "en")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_DURATION = 14 * 24 * 3600
    PERMANENT_SESSION_LIFETIME = 7 * 24 * 3600
    WTF_CSRF_TIME_LIMIT = 8 * 3600

    #: Flask-Talisman: redirect http to https (and send HSTS on https). Off for the embedded setup
    #: and the tests, which run on plain http; on in production.
    FORCE_HTTPS = env_bool("FORCE_HTTPS", False)
    #: HSTS max-age: one year, as ASVS 3.4.1 asks (Talisman sends it on https responses only).
    HSTS_MAX_AGE = 365 * 24 * 3600
    #: Content-Security-Policy of every response (``form-action`` also gets the Zoom OAuth origin,
    #: added in ``create_app``: the ON button's POST redirects there). Pages load only our own
    #: scripts and styles; no inline script anywhere (ASVS 3.4.3: object-src and base-uri 'none').
    #: Inline *styles* are allowed because the email previews (``<iframe sandbox srcdoc>``) inherit
    #: the page's policy and emails must style inline; scripts never run in those frames (sandbox).
    CONTENT_SECURITY_POLICY = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }

    #: The largest request body accepted (413 beyond): forms are small, and the body is read whole
    #: before a write request takes the database's write lock.
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
    #: Zoom's webhook events are a few hundred bytes.
    ZOOM_WEBHOOK_MAX_BYTES = env_int("ZOOM_WEBHOOK_MAX_BYTES", 8 * 1024)

    #: Public forms, per client address (Flask-Limiter syntax; see app/limits.py).
    PUBLIC_FORM_LIMIT = env_str("PUBLIC_FORM_LIMIT", "10 per minute; 60 per hour")
    RESET_REQUEST_LIMIT = env_str("RESET_REQUEST_LIMIT", "5 per minute; 20 per hour")
    #: What the public forms may send to one mailbox (plus-addressing counts as the same one).
    MAILBOX_LIMITS = {"booking": "5 per hour; 20 per day", "cancel": "5 per hour; 20 per day",
                      "reset": "3 per hour; 10 per day"}
    #: Emails about bookings one guest address receives per UTC day at most (the rest are dropped).
    RECIPIENT_DAILY_CAP = env_int("RECIPIENT_DAILY_CAP", 40)
    #: The public booking form must be at least this old when sent (seconds; bots post at once).
    BOOKING_FORM_MIN_SECONDS = env_int("BOOKING_FORM_MIN_SECONDS", 3)
    #: Guest emails a host's own actions (moving, cancelling, removing, resending) may send per UTC day.
    HOST_NOTICE_DAILY_LIMIT = env_int("HOST_NOTICE_DAILY_LIMIT", 500)
    RATELIMIT_HEADERS_ENABLED = True
    #: Redis down: the public forms stay open (logged) rather than answering 500.
    RATELIMIT_SWALLOW_ERRORS = True

    # --- authentication (app/auth) ---
    #: Proxy hops in front of the app whose X-Forwarded-For/-Proto are believed (werkzeug's ProxyFix):
    #: 1 behind one load balancer. 0 (default) believes none: the client address is the peer's.
    TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
    #: Failed logins allowed before the next attempt waits (app/auth/throttle.py): per account from
    #: one address; per account from anywhere; accounts failed on from one address (password spraying).
    LOGIN_THROTTLE_LIMIT = env_int("LOGIN_THROTTLE_LIMIT", 5)
    LOGIN_ACCOUNT_LIMIT = env_int("LOGIN_ACCOUNT_LIMIT", 20)
    LOGIN_ADDRESS_LIMIT = env_int("LOGIN_ADDRESS_LIMIT", 20)
    #: The first wait past an allowance (seconds); it doubles with each further failure, up to the max.
    LOGIN_BACKOFF_SECONDS = env_int("LOGIN_BACKOFF_SECONDS", 60)
    LOGIN_BACKOFF_MAX = env_int("LOGIN_BACKOFF_MAX", 15 * 60)
    #: Failures are forgotten this long (seconds) after the last one.
    LOGIN_THROTTLE_WINDOW = env_int("LOGIN_THROTTLE_WINDOW", 24 * 3600)
    PASSWORD_RESET_MAX_AGE = 3600
    #: How long the link of the signup confirmation email works (seconds).
    EMAIL_VERIFY_MAX_AGE = env_int("EMAIL_VERIFY_MAX_AGE", 7 * 24 * 3600)
    #: At most one signup or confirmation email of a kind to an address per this many seconds.
    ACCOUNT_EMAIL_INTERVAL = env_int("ACCOUNT_EMAIL_INTERVAL", 5 * 60)
    #: A session without a request for this long is logged out (a remember-me cookie logs it back in).
    SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 3 * 60)
    #: Staff log in with a TOTP code after the password (always on in ProductionConfig).
    STAFF_REQUIRE_TOTP = env_bool("STAFF_REQUIRE_TOTP", False)
    #: The name authenticator apps show next to the account.
    TOTP_ISSUER = env_str("TOTP_ISSUER", "予約ホスト管理")
    #: Seconds a staff member has between the password and the code (and to finish enrolling).
    TOTP_ENROLMENT_SECONDS = 10 * 60
    #: Bulk message recipients a host may write per UTC day (abuse guard).
    BULK_DAILY_LIMIT = env_int("BULK_DAILY_LIMIT", 1000)

    #: Outbox: how many due emails one claim takes.
    MAIL_BATCH_SIZE = env_int("MAIL_BATCH_SIZE", 200)
    #: SMTP connections each sending worker opens first. It opens more, up to
    #: MAIL_SMTP_MAX_CONNECTIONS, while the relay takes longer to answer a message than the worker
    #: takes to render the next ones (``app/mail/smtp.py``: sized from the measured reply time).
    MAIL_SMTP_CONNECTIONS = env_int("MAIL_SMTP_CONNECTIONS", 2)
    #: The most SMTP connections one sending worker opens at once.
    MAIL_SMTP_MAX_CONNECTIONS = env_int("MAIL_SMTP_MAX_CONNECTIONS", 10)
    #: The most SMTP connections all sending workers together open: your relay's connection
    #: limit (counted in Redis: ``app/mail/relay_places.py``; 0 = not counted). A relay that
    #: still answers 421 (too many connections) makes a worker go on with the connections it has.
    MAIL_SMTP_RELAY_CONNECTIONS = env_int("MAIL_SMTP_RELAY_CONNECTIONS", 20)
    #: A claim older than this is considered abandoned by a dead worker and is retried.
    MAIL_CLAIM_TIMEOUT = env_int("MAIL_CLAIM_TIMEOUT", 300)
    MAIL_MAX_ATTEMPTS = env_int("MAIL_MAX_ATTEMPTS", 5)
    #: A sweep job stops claiming new batches after this many seconds (RQ kills a job after 180).
    MAIL_SWEEP_SECONDS = env_int("MAIL_SWEEP_SECONDS", 60)
    #: The scheduler looks at the outbox at least this often (seconds); it also wakes up exactly
    #: when the next email is due, so this only bounds the delay of rows written less than an
    #: interval before their due time, or whose send job was lost with Redis.
    SWEEP_INTERVAL = env_int("SWEEP_INTERVAL", 1)
    #: A busy worker marks its job alive this often (seconds; RQ's job monitoring interval, 30 by
    #: default). Three missed beats and the scheduler starts that sweep again elsewhere.
    WORKER_HEARTBEAT = env_int("WORKER_HEARTBEAT", 5)


class TestConfig(Config):
    """The test suite's base: everything local, CSRF on, fast password hashing."""

    TESTING = True
    SECRET_KEY = "test-secret-key"
    SMTP_PORT = 0  # the tests point this at their own aiosmtpd server; 0 never reaches anything real
    APP_BASE_URL = "http://127.0.0.1"
    LOGIN_THROTTLE_LIMIT = 5
    MAIL_CLAIM_TIMEOUT = 60
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast in tests only
    STAFF_REQUIRE_TOTP = False  # the second-factor tests turn it on
    BOOKING_FORM_MIN_SECONDS = 0  # the bot check's own tests set it


class ProductionConfig(Config):
    """Production: secure cookies, JSON logs, and no development secrets."""

    LOG_JSON = True
    FORCE_HTTPS = env_bool("FORCE_HTTPS", True)
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    #: ``__Host-``: the browser keeps these cookies only if Secure, for this host, with Path=/ (ASVS 3.3.1).
    SESSION_COOKIE_NAME = "__Host-session"
    REMEMBER_COOKIE_NAME = "__Host-remember_token"
    STAFF_REQUIRE_TOTP = True

    @classmethod
    def check(cls) -> None:
        """Refuse to start with a development secret (or the emulator's with a real Zoom) or a missing key."""
        if cls.SECRET_KEY in ("", DEV_SECRET_KEY):
            raise RuntimeError("SECRET_KEY must be set to a random value in production")
        if cls.TOKEN_ENCRYPTION_KEY in ("", DEV_TOKEN_ENCRYPTION_KEY):
            raise RuntimeError("TOKEN_ENCRYPTION_KEY must be set (Fernet key) in production")
        # Zoom: the emulator's secrets are published, so a real Zoom needs the app's own (a webhook
        # signed with the published token would be accepted: anyone could unlink any host).
        if not uses_local_emulator(cls.ZOOM_OAUTH_BASE_URL, cls.ZOOM_API_BASE_URL):
            if cls.ZOOM_CLIENT_SECRET in ("", DEV_ZOOM_CLIENT_SECRET):
                raise RuntimeError("ZOOM_CLIENT_SECRET must be set to the Zoom app's Client Secret in production")
            if cls.ZOOM_WEBHOOK_SECRET_TOKEN in ("", DEV_ZOOM_WEBHOOK_SECRET_TOKEN):
                raise RuntimeError("ZOOM_WEBHOOK_SECRET_TOKEN must be set to the Zoom app's Secret Token "
                                   "in production")
        if not uses_local_emulator(cls.GOOGLE_TOKEN_URL, cls.GOOGLE_CALENDAR_BASE_URL):
            if cls.GOOGLE_CLIENT_SECRET in ("", DEV_GOOGLE_CLIENT_SECRET):
                raise RuntimeError("GOOGLE_CLIENT_SECRET must be set to the Google OAuth client's secret in production")
