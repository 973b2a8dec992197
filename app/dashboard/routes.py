"""Dashboard home."""
from flask import jsonify, redirect, render_template, url_for
from sqlalchemy import text

from app.extensions import db
from app.queue import get_redis
from flask_login import current_user, login_required

from app.dashboard import bp
from app.services.catalog import has_services
from app.services.slots import upcoming_slots


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    return redirect(url_for("auth.login"))


@bp.route("/healthz")
def healthz():
    """For the load balancer: 200 when the database and Redis answer, 503 otherwise."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is the health endpoint
        checks["database"] = type(exc).__name__
    finally:
        db.session.rollback()
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = type(exc).__name__
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503


@bp.route("/dashboard")
@login_required
def home():
    return render_template("dashboard/home.html", slots=upcoming_slots(current_user),
                           has_services=has_services(current_user))
