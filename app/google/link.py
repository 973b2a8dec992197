"""A host's own Google account: linking by OAuth, tokens, broken links, revoking, forgetting an OFF link.

Google does not rotate refresh tokens (google-meet-facts §1), but refreshes are still serialized
per link across processes (a Redis lock, then the row read and written under the write lock in
an independent session): two workers at an expiry then make one refresh instead of two, and a
relink committed meanwhile is never overwritten with an older token. A refresh answered
``invalid_grant`` marks the link for relinking and tells the host once.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from app import clock, crypto
from app.extensions import begin_write, db
from app.google.client import CalendarApi, GoogleOAuth, TokenSet
from app.meetings.grants import Grants
from app.mail.render import SkipDelivery, email_kind
from app.meetings.provider import ProviderRefused
from app.models import Delivery, GoogleConnection, LinkBreak, LinkStatus, User
from app.urls import external_url

log = logging.getLogger(__name__)

#: The narrowest scope that writes events, conference data included, on the primary calendar
#: (facts §2: ``calendar.app.created`` cannot use ``primary``).
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events.owned"
#: openid + email: the ID token from the token endpoint names the account (``sub``, ``email``, ``hd``).
SCOPES = f"openid email {CALENDAR_SCOPE}"


class GoogleAccountTaken(Exception):
    """This Google account is already linked to another host."""


class CalendarScopeMissing(Exception):
    """The host unticked the calendar permission on Google's consent screen."""


# --- OAuth (Authlib) ------------------------------------------------------------------------------

class _GoogleOAuthApp(FlaskOAuth2App):
    """Authlib's client, reading the ID token's claims without checking its signature.

    The ID token comes straight from Google's token endpoint over TLS, in answer to our own
    authenticated code exchange (client secret + PKCE verifier), so it cannot have been forged on
    the way (OpenID Connect Core §3.1.3.7 allows skipping the signature check in that case).
    That also spares fetching Google's signing keys on every link.
    """

    def parse_id_token(self, token, nonce, claims_options=None, claims_cls=None, leeway=120):
        claims = id_token_claims(token.get("id_token", ""))
        # Cheap checks that it is the answer to this very request, for this very client.
        if claims.get("aud") not in (None, self.client_id) or (nonce and claims.get("nonce") not in (None, nonce)):
            raise OAuthError(error="invalid_id_token")
        return claims


def init_oauth(app) -> None:
    """Register the Google OAuth client: authorization code + PKCE S256 + state, offline access.

    ``prompt=consent`` makes Google hand out a refresh token on every link, not only the first
    time the account consents (facts §1), so a relink after a revoked grant works.
    """
    oauth = OAuth(app)
    oauth.register(
        "google",
        client_id=app.config["GOOGLE_CLIENT_ID"],
        client_secret=app.config["GOOGLE_CLIENT_SECRET"],
        authorize_url=app.config["GOOGLE_AUTHORIZE_URL"],
        access_token_url=app.config["GOOGLE_TOKEN_URL"],
        authorize_params={"access_type": "offline", "prompt": "consent"},
        client_kwargs={"scope": SCOPES, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_post", "timeout": 10},
        client_cls=_GoogleOAuthApp,
    )
    app.extensions["google_oauth"] = oauth


def oauth_client():
    """The app's Authlib client for Google."""
    return current_app.extensions["google_oauth"].google


def redirect_uri() -> str:
    """The OAuth callback, from APP_BASE_URL (must match the OAuth client's setting exactly, facts §1)."""
    return external_url("google.callback")


def _token_endpoint() -> GoogleOAuth:
    config = current_app.config
    return GoogleOAuth(config["GOOGLE_TOKEN_URL"], config["GOOGLE_REVOKE_URL"], config["GOOGLE_CLIENT_ID"],
                       config["GOOGLE_CLIENT_SECRET"], timeout=config["GOOGLE_HTTP_TIMEOUT"])


def id_token_claims(id_token: str) -> dict:
    """The claims of a JWT, unverified (see ``_GoogleOAuthApp`` for why that is sound here); {} if unreadable."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


# --- reading the link ---------------------------------------------------------------------------

def link_for(host_id: int) -> GoogleConnection | None:
    """The host's Google link while ON or needing relinking; None when not linked or OFF."""
    return db.session.scalar(GoogleConnection.linked([host_id]))


def grant_for(host_id: int) -> GoogleConnection | None:
    """The link whose grant can still act on the host's calendar: ON, or OFF while it deletes what it left."""
    link = db.session.scalar(select(GoogleConnection).where(GoogleConnection.host_id == host_id))
    return link if link is not None and link.has_grant else None


# --- linking ------------------------------------------------------------------------------------

def _store_tokens(link: GoogleConnection, tokens: TokenSet) -> None:
    link.access_token_enc = crypto.encrypt(tokens.access_token)
    if tokens.refresh_token:  # Google sends none on a refresh (no rotation): keep the stored one
        link.refresh_token_enc = crypto.encrypt(tokens.refresh_token)
    link.access_expires_at = tokens.expires_at
    if tokens.scope:
        link.scope = tokens.scope


def complete_link(host: User, token: dict) -> GoogleConnection:
    """Turn the link ON with the tokens from the OAuth callback (the caller commits).

    A brand-new link (or one turned OFF) applies to bookings made from now on; relinking a
    broken link keeps its start, so bookings waiting for a URL get one.

    :raises CalendarScopeMissing: the calendar permission was not granted; nothing is stored.
    :raises GoogleAccountTaken: the account is another host's link; nothing is stored.
    :raises ProviderRefused: the answer lacks the ID token or refresh token a link needs.
    """
    tokens = TokenSet.from_response(token)
    if CALENDAR_SCOPE not in tokens.scope.split():
        # Google's consent screen lets the host untick single permissions: without this one every
        # event insert would fail with 403 insufficientPermissions (facts §4).
        raise CalendarScopeMissing(tokens.scope)
    claims = token.get("userinfo") or id_token_claims(tokens.id_token)
    subject = str(claims.get("sub") or "")
    if not subject:
        raise ProviderRefused("token response without an ID token subject")
    begin_write()
    other = db.session.scalar(select(GoogleConnection.id).where(GoogleConnection.google_subject == subject,
                                                                GoogleConnection.host_id != host.id))
    if other is not None:
        # Not revoked: Google revokes every token of the account for our client at once (facts
        # §1), which would break the other host's link too. The new tokens are simply dropped.
        db.session.rollback()
        raise GoogleAccountTaken(str(claims.get("email") or ""))
    link = db.session.scalar(select(GoogleConnection).where(GoogleConnection.host_id == host.id))
    if link is None:
        if not tokens.refresh_token:
            raise ProviderRefused("token response without a refresh token")
        link = GoogleConnection(host_id=host.id, applies_from=clock.now())
        db.session.add(link)
    elif link.status == LinkStatus.OFF:
        # OFF with events still to delete: linking again is a new link (bookings from now on),
        # whose grant also deletes those events.
        link.applies_from = clock.now()
    link.google_subject = subject
    link.google_email = str(claims.get("email") or "")
    link.hosted_domain = str(claims.get("hd") or "")
    _store_tokens(link, tokens)
    link.status = LinkStatus.ACTIVE
    link.broken_reason = ""
    link.linked_at = clock.now()
    db.session.flush()
    from app.google.provider import tool  # the provider imports this module
    from app.meetings import switch

    switch.on_linked(host.id, tool)
    return link


# --- tokens -------------------------------------------------------------------------------------

def revoke(link: GoogleConnection) -> None:
    """Revoke the link's grant at Google by its refresh token, which ends the whole grant (facts §1).

    A token Google no longer knows counts as revoked. :raises ProviderError: Google did not answer usefully.
    """
    _token_endpoint().revoke(crypto.decrypt(link.refresh_token_enc))


#: Google does not rotate refresh tokens; ``invalid_client`` is our OAuth client's credentials, not
#: the host's grant (logged, the link kept).
grants = Grants(model=GoogleConnection, key="google", relink_email="google_relink_needed",
                refresh=lambda refresh_token: _token_endpoint().refresh(refresh_token),
                store=lambda link, tokens: _store_tokens(link, tokens),
                revoke=lambda link_id: revoke(db.session.get(GoogleConnection, link_id)),
                grant_is_dead=lambda exc: exc.code == "invalid_grant")
access_token = grants.access_token
mark_broken = grants.mark_broken


def api_for(link_id: int) -> CalendarApi:
    """The Calendar API acting as this host."""
    config = current_app.config
    return CalendarApi(config["GOOGLE_CALENDAR_BASE_URL"],
                       lambda force_refresh=False: access_token(link_id, force_refresh),
                       timeout=config["GOOGLE_HTTP_TIMEOUT"])


# --- unlinking ----------------------------------------------------------------------------------

def finish_off(host_id: int) -> bool:
    """A link turned OFF with no event left to delete: revoke its grant and forget it; commits."""
    from app.google.provider import tool  # the provider imports this module

    return grants.finish_off(host_id, tool)


# --- the email to the host ------------------------------------------------------------------------

@email_kind("google_relink_needed", subject=lambda ctx: _("【要対応】Google Meet連携の再設定をお願いします"))
def _relink_context(delivery: Delivery) -> dict:
    host = db.session.get(User, delivery.host_id)
    if host is None:
        raise SkipDelivery("host deleted")
    return {"host": host, "settings_url": external_url("google.settings"),
            "reason": LinkBreak.text_of(delivery.payload.get("reason", ""), "Google Meet")}
