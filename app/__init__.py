"""The application factory: it only wires extensions, blueprints, errors and commands."""
from flask import Flask, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from config import Config


def select_locale() -> str:
    """A host's own language, else the browser's, else Japanese."""
    if current_user and current_user.is_authenticated:
        return current_user.locale
    from flask import current_app

    return request.accept_languages.best_match(current_app.config["LANGUAGES"]) or "ja"


def select_timezone() -> str:
    """The host's time zone (default Asia/Tokyo)."""
    if current_user and current_user.is_authenticated:
        return current_user.timezone
    return "Asia/Tokyo"


def init_security_headers(app: Flask) -> None:
    """Flask-Talisman: CSP, HSTS and https redirect (production), nosniff, frame and referrer policy;
    ``Cache-Control: no-store`` on everything but static files."""
    from urllib.parse import urlsplit

    from flask_talisman import Talisman

    policy = dict(app.config["CONTENT_SECURITY_POLICY"])
    # Chrome checks form-action on the redirect after a POST too: ON/relink POSTs, then goes to the
    # video tool's consent page.
    origins = [urlsplit(app.config[name]) for name in ("ZOOM_OAUTH_BASE_URL", "GOOGLE_AUTHORIZE_URL")]
    policy["form-action"] = " ".join([policy.get("form-action", "'self'"),
                                      *dict.fromkeys(f"{o.scheme}://{o.netloc}" for o in origins)])
    Talisman(app, content_security_policy=policy, force_https=app.config["FORCE_HTTPS"],
             strict_transport_security_max_age=app.config["HSTS_MAX_AGE"], frame_options="DENY",
             session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
             session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"])

    @app.after_request
    def _no_store(response):
        """Every page is someone's (guest data, a token in its URL, a CSRF token): no cache, neither
        the browser's history nor a shared proxy, keeps a copy. Static files keep normal caching, and
        so do hosts' profile photos (public, at a URL that changes with the photo)."""
        if request.endpoint not in ("static", "dashboard.favicon", "account.photo"):
            response.headers["Cache-Control"] = "no-store"
        return response


def create_app(config_class: type = Config, **overrides) -> Flask:
    """Build the app from a config class plus optional overrides (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config_class)
    app.config.update(overrides)
    if hasattr(config_class, "check"):
        config_class.check()
    if hops := app.config["TRUSTED_PROXIES"]:  # behind a load balancer: the client's address and scheme
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    init_security_headers(app)  # first: the https redirect comes before any other request hook

    from app.extensions import babel, csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("ログインしてください。")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    from app.extensions import read_views_skip_the_transaction, write_requests_take_the_lock
    from app.queue import init_queue

    init_queue(app)
    from app import limits

    limits.init_app(app)
    write_requests_take_the_lock(app)
    read_views_skip_the_transaction(app)

    from app import account, auth, booking, dashboard, google, meetings, messages, services, staff, zoom

    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(services.bp)
    app.register_blueprint(booking.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(zoom.bp)
    app.register_blueprint(google.bp)
    app.register_blueprint(messages.bp)
    # The load balancer probes /healthz over plain http: answer it instead of redirecting to https.
    app.view_functions["dashboard.healthz"].talisman_view_options = {"force_https": False}

    meetings.init_app(app)
    from app.google.link import init_oauth as init_google_oauth
    from app.zoom.link import init_oauth as init_zoom_oauth

    init_zoom_oauth(app)
    init_google_oauth(app)

    from app import cli, errors, logs, templating

    logs.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    cli.init_app(app)
    return app
