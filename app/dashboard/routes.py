"""Dashboard home."""
from flask import redirect, render_template, url_for
from flask_login import current_user, login_required

from app.dashboard import bp
from app.services.catalog import host_services
from app.services.slots import upcoming_slots


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    return redirect(url_for("auth.login"))


@bp.route("/dashboard")
@login_required
def home():
    return render_template("dashboard/home.html", slots=upcoming_slots(current_user),
                           services=host_services(current_user))
