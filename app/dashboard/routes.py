"""Dashboard home, and the list of every upcoming slot it links to."""
from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import text

from app.dashboard import bp
from app.extensions import db, reads_only
from app.queue import get_redis
from app.services.catalog import has_services
from app.services.guests import first_guests
from app.services.slots import next_slots, upcoming_slots

#: The dashboard shows the next few slots, each with its first few guests; the rest is a link away.
DASHBOARD_SLOTS = 10
DASHBOARD_GUESTS = 5


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("staff.index" if current_user.is_staff else "dashboard.home"))
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


@bp.route("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on every site; the pages link the SVG too (base.html)."""
    return current_app.send_static_file("favicon.ico")


@bp.route("/dashboard")
@login_required
@reads_only
def home():
    """The next slots with their first guests, and links to the rest."""
    if current_user.is_staff:  # staff are not hosts: they land on their own home (after login too)
        return redirect(url_for("staff.index"))
    shown, more = next_slots(current_user, DASHBOARD_SLOTS)
    return render_template("dashboard/home.html", slots=shown, more=more,
                           guests=first_guests([s.id for s in shown], DASHBOARD_GUESTS),
                           has_services=bool(shown) or has_services(current_user))


@bp.route("/dashboard/upcoming")
@login_required
@reads_only
def upcoming():
    """Every upcoming slot of every service, a page at a time (the dashboard's もっと見る)."""
    return render_template("dashboard/upcoming.html",
                           upcoming=upcoming_slots(current_user, request.args.get("page", 1, type=int)))
