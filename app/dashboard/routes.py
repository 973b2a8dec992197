"""Dashboard home, and the list of every upcoming slot it links to."""
from datetime import timedelta

from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import text

from app import clock
from app.dashboard import bp, day
from app.extensions import db, reads_only
from app.queue import get_redis
from app.services.guests import first_guests
from app.services.slots import upcoming_slots
from app.forms import EmptyForm
from app.google.link import link_for as google_link_for

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
    """Today, this week and later, with what needs the host first; a new host's checklist."""
    if current_user.is_staff:  # staff are not hosts: they land on their own home (after login too)
        return redirect(url_for("staff.index"))
    now, tz = clock.now(), current_user.timezone
    w = day.window(tz, now)
    groups, more = day.agenda(current_user.id, w, DASHBOARD_SLOTS)
    today_tool = [s.id for s in groups["today"] if s.venue in day.TOOL_VENUES]
    zoom_link, google_link = current_user.zoom_connection, google_link_for(current_user.id)
    steps = day.checklist(current_user, video_linked=bool(zoom_link or google_link))
    later = [s.id for key in ("today", "week", "later") for s in groups[key] if s.id not in today_tool]
    return render_template(
        "dashboard/home.html", groups=groups, more=more, counts=day.counts(current_user.id, w),
        today_guests=day.today_guests(today_tool, DASHBOARD_GUESTS), guests=first_guests(later, DASHBOARD_GUESTS),
        failed_emails=day.failed_url_emails(current_user.id, now), failed_meetings=day.failed_meetings(current_user.id, now),
        broken=day.broken_links(zoom_link, google_link), steps=steps, checklist_done=all(done for _, done in steps),
        steps_done=sum(done for _, done in steps), next_step=next((k for k, done in steps if not done), None),
        ended_ids={s.id for s in groups["today"] if s.starts_at + timedelta(minutes=s.duration_minutes) <= now},
        has_services=dict(steps)["service"], action_form=EmptyForm())


@bp.route("/dashboard/calendar")
@login_required
@reads_only
def month():
    """A month of the host's dates, a week a row (a day a row on phones), each date linking to its slot."""
    tz = current_user.timezone
    today = clock.to_local(clock.now(), tz).date()
    first = day.parse_month(request.args.get("month"), today)
    return render_template("dashboard/calendar.html", first=first, today=today,
                           weeks=day.month_weeks(current_user.id, tz, first),
                           prev=day.shift_month(first, -1), next=day.shift_month(first, 1))


@bp.route("/dashboard/upcoming")
@login_required
@reads_only
def upcoming():
    """Every upcoming slot of every service, a page at a time (the dashboard's もっと見る)."""
    return render_template("dashboard/upcoming.html",
                           upcoming=upcoming_slots(current_user, request.args.get("page", 1, type=int)))
