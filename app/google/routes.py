"""Google linking: start OAuth, the callback, and the settings address (a section of the combined page)."""
import logging

from authlib.integrations.base_client.errors import OAuthError
from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
import requests

from app.extensions import db
from app.forms import EmptyForm
from app.google import bp, link
from app.meetings.provider import ProviderError

log = logging.getLogger(__name__)


def _settings_page():
    """The Google section of the combined 「連携するビデオツール」 page."""
    return redirect(url_for("zoom.settings") + "#google")


@bp.route("/settings/google")
@login_required
def settings():
    """The address emails and pages link to for Google; the page itself is the combined one."""
    return _settings_page()


@bp.route("/settings/google/link", methods=["POST"])
@login_required
def start_link():
    """Turn ON / relink: send the host to Google's consent page (state, nonce and PKCE kept in the session)."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    return link.oauth_client().authorize_redirect(link.redirect_uri())


@bp.route("/google/callback")
@login_required
def callback():
    error = request.args.get("error")
    if error:
        # Only Google's code is logged: its description is Google's text, not ours to show.
        log.info("google oauth callback error: %s", error[:40])
        if error == "access_denied":
            flash(_("連携をキャンセルしました。"), "info")
        else:
            flash(_("Googleとの連携に失敗しました。もう一度お試しください。"), "error")
        return _settings_page()
    try:
        # Authlib checks that ``state`` is the one stored in this session (single use) and sends
        # the PKCE verifier with the code.
        token = link.oauth_client().authorize_access_token()
    except OAuthError as exc:
        log.warning("google oauth callback refused: %s", str(exc.error)[:40])
        flash(_("Googleとの連携に失敗しました（リクエストが無効か、有効期限が切れています）。もう一度お試しください。"), "error")
        return _settings_page()
    except (requests.RequestException, ValueError) as exc:  # Google unreachable, or not JSON
        log.warning("google token exchange failed: %s", type(exc).__name__)
        flash(_("Googleからアカウント情報を取得できませんでした。しばらくしてからもう一度お試しください。"), "error")
        return _settings_page()
    try:
        link.complete_link(current_user, token)
    except link.CalendarScopeMissing:
        db.session.rollback()
        flash(_("Googleカレンダーへの予定の作成が許可されていません。もう一度連携し、Googleの画面でカレンダーの項目にチェックを入れて許可してください。"),
              "error")
        return _settings_page()
    except link.GoogleAccountTaken as exc:
        db.session.rollback()
        flash(_("このGoogleアカウント（%(email)s）はすでに別のホストアカウントで連携されています。ご自身のGoogleアカウントで連携してください。",
                email=str(exc)), "error")
        return _settings_page()
    except ProviderError as exc:
        db.session.rollback()
        log.warning("google link not completed: %s", exc)
        flash(_("Googleからアカウント情報を取得できませんでした。しばらくしてからもう一度お試しください。"), "error")
        return _settings_page()
    db.session.commit()
    flash(_("Google Meetと連携しました。これ以降のご予約から、Google MeetのURLを自動で発行します。"), "success")
    return _settings_page()
