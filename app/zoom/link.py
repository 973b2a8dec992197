"""A host's personal Zoom link: linking by OAuth, tokens, turning it OFF, broken links.

Tokens rotate on every refresh and the old refresh token dies at once (zoom-facts §1): refreshes
are serialized and stored by ``app.meetings.grants`` before the new access token is used. Zoom is
never called while this process holds a database write lock.
"""
from __future__ import annotations

from datetime import date

from authlib.integrations.flask_client import OAuth
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock, crypto
from app.extensions import begin_write, db
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.meetings import switch
from app.meetings.grants import Grants
from app.models import Delivery, LinkBreak, LinkStatus, Meeting, MeetingStatus, User, ZoomConnection
from app.meetings.provider import ProviderError
from app.queue import get_redis
from app.urls import external_url
from app.zoom.client import DAILY_CREATE_UPDATE_LIMIT, TokenSet, ZoomApi, ZoomOAuth, ZoomUser


class ZoomAccountTaken(Exception):
    """This Zoom account is already linked to another host."""


# --- OAuth (Authlib) ------------------------------------------------------------------------------

def init_oauth(app) -> None:
    """Register the Zoom OAuth client (authorization code + PKCE S256, client_secret_basic)."""
    oauth = OAuth(app)
    base = app.config["ZOOM_OAUTH_BASE_URL"].rstrip("/")
    oauth.register(
        "zoom",
        client_id=app.config["ZOOM_CLIENT_ID"],
        client_secret=app.config["ZOOM_CLIENT_SECRET"],
        authorize_url=f"{base}/oauth/authorize",
        access_token_url=f"{base}/oauth/token",
        client_kwargs={"code_challenge_method": "S256", "token_endpoint_auth_method": "client_secret_basic",
                       "timeout": 10},
    )
    app.extensions["zoom_oauth"] = oauth


def oauth_client():
    """The app's Authlib client for Zoom."""
    return current_app.extensions["zoom_oauth"].zoom


def redirect_uri() -> str:
    """The OAuth callback, derived from APP_BASE_URL (must match the Zoom app's setting exactly)."""
    return external_url("zoom.callback")


def _token_endpoint() -> ZoomOAuth:
    config = current_app.config
    return ZoomOAuth(config["ZOOM_OAUTH_BASE_URL"], config["ZOOM_CLIENT_ID"], config["ZOOM_CLIENT_SECRET"])


# --- reading the link ---------------------------------------------------------------------------

def connection_for(host_id: int) -> ZoomConnection | None:
    """The host's Zoom link, if any (None means OFF)."""
    return db.session.scalar(ZoomConnection.linked([host_id]))


def connection_by_id(connection_id: int) -> ZoomConnection | None:
    return db.session.get(ZoomConnection, connection_id)


def _tool():
    from app.meetings.tools import tool_named  # the tool (zoom.provider) builds on this module

    return tool_named("zoom")


def grant_for(host_id: int) -> ZoomConnection | None:
    """The link whose grant can still act on the host's Zoom: ON, or OFF while it deletes what it left."""
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.host_id == host_id))
    return connection if connection is not None and connection.has_grant else None


def shown_connection(host: User) -> ZoomConnection | None:
    """The host's Zoom link as the pages that show it read it: loaded with the request's user.

    Every host page shows it in the relink banner, and the Zoom-aware pages show it again:
    ``auth.accounts.load_user`` loads it in the user's query. Code that changes the link reads
    ``connection_for``.
    """
    return host.zoom_connection


def budget_key(connection_id: int, day: date) -> str:
    return f"zoom-writes:{connection_id}:{day.isoformat()}"


def record_write(connection_id: int, *, exhausted: bool = False) -> None:
    """Count one meeting create/update against today's (UTC) budget of 100."""
    key = budget_key(connection_id, clock.now().date())
    redis = get_redis()
    if exhausted:
        redis.set(key, DAILY_CREATE_UPDATE_LIMIT, ex=2 * 86400)
    else:
        redis.incr(key)
        redis.expire(key, 2 * 86400)


def budget_left(connection_id: int) -> int:
    """Create/update requests left today; Zoom resets the count at 00:00 UTC (09:00 JST)."""
    used = int(get_redis().get(budget_key(connection_id, clock.now().date())) or 0)
    return max(DAILY_CREATE_UPDATE_LIMIT - used, 0)


# --- linking ------------------------------------------------------------------------------------

def _store_tokens(connection: ZoomConnection, tokens: TokenSet) -> None:
    connection.access_token_enc = crypto.encrypt(tokens.access_token)
    connection.refresh_token_enc = crypto.encrypt(tokens.refresh_token)
    connection.access_expires_at = tokens.expires_at
    connection.scope = tokens.scope


def complete_link(host: User, token: dict) -> ZoomConnection:
    """Turn the link ON with the tokens from the OAuth callback; read who the Zoom user is.

    A brand-new link applies to bookings made from now on; relinking a broken link keeps its
    start, so bookings waiting for a URL get one.

    :raises ZoomAccountTaken: the Zoom user is linked to another host (their grant was just
        replaced by Zoom, so theirs is marked for relinking and ours is revoked).
    """
    tokens = TokenSet.from_response(token)
    me = ZoomApi(current_app.config["ZOOM_API_BASE_URL"], lambda force_refresh=False: tokens.access_token).users_me()
    begin_write()
    other = db.session.scalar(select(ZoomConnection).where(ZoomConnection.zoom_user_id == me.id,
                                                           ZoomConnection.host_id != host.id))
    if other is not None:
        other_id = other.id
        db.session.rollback()  # release the write lock: mark_broken writes in its own transaction
        try:
            _token_endpoint().revoke(tokens.access_token)
        except ProviderError:
            pass
        # Zoom keeps only the newest grant of a user (4741): the other host's tokens are dead now.
        mark_broken(other_id, LinkBreak.TAKEN_OVER)
        raise ZoomAccountTaken(me.email)
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.host_id == host.id))
    if connection is None:
        connection = ZoomConnection(host_id=host.id, applies_from=clock.now())
        db.session.add(connection)
    elif connection.status == LinkStatus.OFF:
        # Turned OFF with meetings still to delete: linking again is a new link (it covers bookings
        # from now on) whose grant also deletes those meetings.
        connection.applies_from = clock.now()
    _apply_user(connection, me)
    _store_tokens(connection, tokens)
    connection.status = LinkStatus.ACTIVE
    connection.broken_reason = ""
    connection.linked_at = clock.now()
    db.session.flush()
    switch.on_linked(host.id, _tool())
    return connection


def _apply_user(connection: ZoomConnection, me: ZoomUser) -> None:
    connection.zoom_user_id = me.id
    connection.zoom_account_id = me.account_id
    connection.zoom_email = me.email
    connection.plan_type = me.type
    connection.plan_checked_at = clock.now()
    connection.zoom_timezone = me.timezone


# --- tokens -------------------------------------------------------------------------------------

def _independent_session() -> Session:
    """A session with its own transaction (the plan is stored whatever the caller does)."""
    return db.session.session_factory()


def _revoke(connection_id: int) -> None:
    _token_endpoint().revoke(access_token(connection_id))


#: Zoom rotates refresh tokens on every refresh and the old one dies at once (zoom-facts §1).
grants = Grants(model=ZoomConnection, key="zoom", relink_email="zoom_relink_needed",
                refresh=lambda refresh_token: _token_endpoint().refresh(refresh_token),
                store=lambda connection, tokens: _store_tokens(connection, tokens), revoke=_revoke)
access_token = grants.access_token
mark_broken = grants.mark_broken


def api_for(connection_id: int) -> ZoomApi:
    """The Zoom API client acting as this host."""
    return ZoomApi(current_app.config["ZOOM_API_BASE_URL"],
                   lambda force_refresh=False: access_token(connection_id, force_refresh))


def refresh_plan(connection_id: int) -> ZoomUser:
    """Re-read the Zoom user and plan type (it can change at any time, zoom-facts §2); own transaction."""
    me = api_for(connection_id).users_me()
    with _independent_session() as session:
        session.connection(execution_options={"sqlite_immediate": True})
        connection = session.get(ZoomConnection, connection_id)
        if connection is not None:
            _apply_user(connection, me)
            session.commit()
    return me


def finish_off(host_id: int) -> bool:
    """A link turned OFF with nothing left to delete on Zoom: revoke its grant and forget it; commits."""
    return grants.finish_off(host_id, _tool())


def deauthorize(zoom_user_id: str) -> bool:
    """The host removed our app in Zoom: forget tokens and Zoom data, stop sending, tell the host."""
    begin_write()
    connection = db.session.scalar(select(ZoomConnection).where(ZoomConnection.zoom_user_id == zoom_user_id))
    if connection is None:
        return False
    host = connection.host
    for meeting in switch.live_meetings(host.id, _tool()):
        # Zoom staff: delete our data "but not delete the meetings themselves" (zoom-facts §5).
        meeting.mark_deleted("app deauthorized in Zoom")
    switch.stop(host, _tool())
    db.session.delete(connection)
    queue_email("zoom_deauthorized", to_email=host.email, to_name=host.display_name, locale=host.locale,
                host_id=host.id)
    db.session.commit()
    return True


def meeting_deleted_on_zoom(zoom_meeting_id: int) -> bool:
    """Zoom told us a meeting is gone: mark it so the URL email path issues a new one."""
    begin_write()
    meeting = db.session.scalar(select(Meeting).where(Meeting.provider == "zoom",
                                                      Meeting.external_id == str(zoom_meeting_id),
                                                      Meeting.status == MeetingStatus.ISSUED))
    if meeting is None:
        return False
    meeting.mark_deleted("deleted on Zoom")
    db.session.commit()
    return True


# --- emails to the host ---------------------------------------------------------------------------

def _host_context(delivery: Delivery) -> dict:
    host = db.session.get(User, delivery.host_id)
    if host is None:
        raise SkipDelivery("host deleted")
    return {"host": host, "settings_url": external_url("zoom.settings"), **delivery.payload}


@email_kind("zoom_relink_needed", subject=lambda ctx: _("【要対応】Zoom連携の再設定をお願いします"))
def _relink_context(delivery: Delivery) -> dict:
    ctx = _host_context(delivery)
    return {**ctx, "reason": LinkBreak.text_of(ctx["reason"], "Zoom")}


@email_kind("zoom_deauthorized", subject=lambda ctx: _("Zoom連携が解除されました"))
def _deauthorized_context(delivery: Delivery) -> dict:
    return _host_context(delivery)
