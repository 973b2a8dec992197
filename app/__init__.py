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


def create_app(config_class: type = Config, **overrides) -> Flask:
    """Build the app from a config class plus optional overrides (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config_class)
    app.config.update(overrides)
    if hasattr(config_class, "check"):
        config_class.check()

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

    from app.extensions import write_requests_take_the_lock
    from app.queue import init_queue

    init_queue(app)
    write_requests_take_the_lock(app)

    from app import auth, booking, dashboard, messages, services, staff, zoom

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(services.bp)
    app.register_blueprint(booking.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(zoom.bp)
    app.register_blueprint(messages.bp)

    from app.zoom.link import init_oauth

    init_oauth(app)

    from app import cli, errors, logs, templating

    logs.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    cli.init_app(app)
    return app
