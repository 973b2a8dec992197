"""Zoom settings (連携設定), OAuth callback, and the webhook endpoint."""
import json
import logging
import time

from authlib.integrations.base_client.errors import OAuthError
from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.extensions import csrf, db, locks_when_writing, reads_only
from app.queue import get_queue
from app.meetings import attendance, switch
from app.meetings.provider import ProviderError
from app.zoom import bp, legacy, link, participants, webhook
from app.zoom.provider import BASIC_LIMIT_MINUTES, tool
from app.zoom.forms import LinkForm
from config import DEV_ZOOM_WEBHOOK_SECRET_TOKEN, uses_local_emulator

log = logging.getLogger(__name__)


@bp.app_context_processor
def zoom_banners():
    """Every host page knows whether the Zoom link needs relinking, and the migration countdown."""
    banners = {}
    if current_user and current_user.is_authenticated and not current_user.is_staff:
        connection = link.shown_connection(current_user)
        if connection is not None and not connection.is_active:
            banners["zoom_needs_relink"] = connection
        banners["migration_banner"] = legacy.banner_for(current_user)
    return banners


#: Services and bookings the settings page names; it counts the rest.
SETTINGS_LIST_LIMIT = 20
#: The settings page says how many URL creates and updates Zoom still allows today only when this
#: few are left (of 100 a day): a full budget is nothing the host needs to read about.
BUDGET_SHOWN_AT = 20


@bp.route("/settings/zoom")
@login_required
@reads_only
def settings():
    connection = link.shown_connection(current_user)
    legacy_link = current_user.legacy_zoom_link  # both loaded with the user
    active = connection is not None and connection.is_active
    budget = link.budget_left(connection.id) if connection is not None else None
    return render_template(
        "zoom/settings.html", connection=connection, form=LinkForm(), legacy_link=legacy_link,
        budget=budget, budget_low=budget is not None and budget <= BUDGET_SHOWN_AT,
        long_services=(switch.services_cut(current_user, tool, BASIC_LIMIT_MINUTES, SETTINGS_LIST_LIMIT)
                       if connection is not None and connection.is_basic else None),
        not_covered=switch.not_covered_preview(connection, tool, SETTINGS_LIST_LIMIT) if active else None,
        legacy_issued=(legacy.legacy_meeting_count(current_user.id)
                       if legacy_link is not None and legacy_link.is_active else 0),
        left_on_zoom=switch.left_undeleted(current_user.id, tool),
        google=_google_section())


def _google_section() -> dict:
    """The Google Meet part of the combined 「連携するビデオツール」 page."""
    from app.google.provider import FREE_GROUP_CALL_MINUTES, tool as google

    found = google.link_for(current_user.id)
    free = found is not None and not found.is_workspace
    return {"tool": google, "link": found, "cut_minutes": FREE_GROUP_CALL_MINUTES,
            "long_services": (switch.services_cut(current_user, google, FREE_GROUP_CALL_MINUTES, SETTINGS_LIST_LIMIT)
                              if free else None),
            "not_covered": (switch.not_covered_preview(found, google, SETTINGS_LIST_LIMIT)
                            if found is not None and found.is_active else None),
            "left": switch.left_undeleted(current_user.id, google)}


@bp.route("/settings/zoom/legacy-off", methods=["POST"])
@login_required
def legacy_off():
    """Turn the old platform-account link OFF now (before the release)."""
    if not LinkForm().validate_on_submit():
        abort(400)
    meetings_deleted, emails = legacy.turn_off_legacy(current_user)
    if meetings_deleted and emails:
        said = _("旧Zoom連携をOFFにしました。発行済みのURL%(n)d件を無効にし、自動送信予定だったメール%(m)d通を取り消しました。",
                 n=meetings_deleted, m=emails)
    elif meetings_deleted:
        said = _("旧Zoom連携をOFFにしました。発行済みのURL%(n)d件を無効にしました。", n=meetings_deleted)
    elif emails:  # URLs already gone, a pending email left: not "0 URLs"
        said = _("旧Zoom連携をOFFにしました。自動送信予定だったメール%(m)d通を取り消しました。", m=emails)
    else:
        said = _("旧Zoom連携をOFFにしました。")
    flash(said, "success")
    return redirect(url_for("zoom.settings"))


@bp.route("/settings/zoom/link", methods=["POST"])
@login_required
def start_link():
    """Turn ON / relink: send the host to Zoom's consent page (state + PKCE kept in the session)."""
    if not LinkForm().validate_on_submit():
        abort(400)
    return link.oauth_client().authorize_redirect(link.redirect_uri())


@bp.route("/zoom/callback")
@login_required
def callback():
    if request.args.get("error"):
        flash(_("Zoomとの連携はキャンセルされました。"), "info")
        return redirect(url_for("zoom.settings"))
    try:
        # Authlib checks that ``state`` is the one stored in this session (single use) and sends
        # the PKCE verifier with the code.
        token = link.oauth_client().authorize_access_token()
    except OAuthError as exc:
        log.warning("zoom oauth callback refused: %s", exc.error)
        flash(_("Zoomとの連携に失敗しました（リクエストが無効か、有効期限が切れています）。もう一度お試しください。"), "error")
        return redirect(url_for("zoom.settings"))
    try:
        link.complete_link(current_user, token)
    except link.ZoomAccountTaken as exc:
        db.session.commit()
        flash(_("このZoomアカウント（%(email)s）はすでに別のホストアカウントで連携されています。ご自身のZoomアカウントで連携してください。",
                email=str(exc)), "error")
        return redirect(url_for("zoom.settings"))
    except ProviderError:
        db.session.rollback()
        flash(_("Zoomからアカウント情報を取得できませんでした。しばらくしてからもう一度お試しください。"), "error")
        return redirect(url_for("zoom.settings"))
    db.session.commit()
    flash(_("Zoomと連携しました。これ以降のご予約から、ZoomのURLを自動で発行します。"), "success")
    return redirect(url_for("zoom.settings"))


@bp.route("/zoom/webhook", methods=["POST"])
@csrf.exempt  # Zoom signs its requests instead (checked below)
@locks_when_writing  # it never writes: it verifies and enqueues
def webhook_endpoint():
    """Verify, answer within 3 s, and leave the work to a job."""
    secret = current_app.config["ZOOM_WEBHOOK_SECRET_TOKEN"]
    if secret == DEV_ZOOM_WEBHOOK_SECRET_TOKEN and not uses_local_emulator(
            current_app.config["ZOOM_OAUTH_BASE_URL"], current_app.config["ZOOM_API_BASE_URL"]):
        secret = ""  # the published token signs the emulator's events only: refuse every request
    request.max_content_length = current_app.config["ZOOM_WEBHOOK_MAX_BYTES"]  # Zoom's events are small
    raw = request.get_data(cache=True)
    if not webhook.is_authentic(secret, request.headers.get("x-zm-request-timestamp"),
                                request.headers.get("x-zm-signature"), raw, time.time()):
        return jsonify(error="invalid signature"), 401
    try:
        event = json.loads(raw)
    except ValueError:
        return jsonify(error="invalid JSON"), 400
    if not isinstance(event, dict):
        return jsonify(error="invalid JSON"), 400
    kind = event.get("event")
    payload = event.get("payload") or {}
    if kind == "endpoint.url_validation":  # no side effect: answered every time
        return jsonify(webhook.url_validation_answer(secret, str(payload.get("plainToken", ""))))
    signature = request.headers["x-zm-signature"]
    if not webhook.first_delivery(signature):
        return jsonify(status="duplicate"), 200  # a replay: already handled, never twice
    from app import jobs  # the jobs import this feature's domain modules

    try:
        if kind == "app_deauthorized" and payload.get("user_id"):
            get_queue().enqueue(jobs.zoom_deauthorized, str(payload["user_id"]))
        elif kind == "meeting.deleted" and (payload.get("object") or {}).get("id"):
            get_queue().enqueue(jobs.zoom_meeting_deleted, int(payload["object"]["id"]))
        elif kind in participants.PARTICIPANT_EVENTS:
            if (stay := participants.participant_event(kind, payload, event.get("event_ts"))) is not None:
                get_queue().enqueue(jobs.record_attendance, stay, retry=attendance.EVENT_RETRY)
        elif kind == participants.ENDED_EVENT:
            if (ended := participants.meeting_ended(payload, event.get("event_ts"))) is not None:
                get_queue().enqueue(jobs.meeting_ended, ended, retry=attendance.EVENT_RETRY)
    except Exception:
        webhook.forget_delivery(signature)  # Zoom retries after a 5xx: let the retry through
        raise
    return "", 204
