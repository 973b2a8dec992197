"""A host's grant on a video tool, kept the same way for every tool.

- Refreshes are serialized per link across processes (a Redis lock) and the new tokens are
  committed in their own transaction, holding the database write lock from the read to the
  commit, before the new access token is used: a tool that rotates refresh tokens (Zoom) kills
  the old one at once, so failing to store the new pair would lose the link.
- A grant found dead marks the link for relinking and emails the host once per breakage.
- A link turned OFF is forgotten (and its grant revoked) once it has nothing left to delete.

A tool's ``link.py`` makes one ``Grants`` with its model and its token endpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app import clock, crypto
from app.extensions import begin_write, db
from app.mail.outbox import queue_email
from app.meetings.provider import ProviderAuthError, ProviderError
from app.models import LinkBreak, LinkStatus, User
from app.queue import get_redis

log = logging.getLogger(__name__)

#: Refresh this long before the access token expires.
REFRESH_AHEAD = timedelta(minutes=5)


def _independent_session() -> Session:
    """A session with its own transaction: a refresh commits whatever the caller does."""
    return db.session.session_factory()


@dataclass(frozen=True)
class Grants:
    """The grants of one tool's links.

    :param model: the tool's link model (``VideoLinkMixin``).
    :param key: the tool's key (lock names, the meetings it left).
    :param relink_email: the email kind that asks the host to relink.
    :param refresh: refresh token → new tokens (``access_token``, ``refresh_token`` ("" when the
        tool does not rotate), ``expires_at``, ``scope``); raises ``ProviderAuthError``.
    :param store: writes new tokens on a link row (encrypted).
    :param revoke: revokes a link's grant at the tool (given the link id).
    :param grant_is_dead: whether a refusal of the refresh means the host's grant is gone (rather
        than, say, our own client's credentials being wrong).
    """

    model: type
    key: str
    relink_email: str
    refresh: Callable
    store: Callable
    revoke: Callable[[int], None]
    grant_is_dead: Callable[[ProviderAuthError], bool] = lambda exc: True

    def _lock_name(self, link_id: int) -> str:
        return f"{self.key}-refresh:{link_id}"

    def access_token(self, link_id: int, force_refresh: bool = False) -> str:
        """A usable access token for the link, refreshed ahead of expiry.

        :raises ProviderAuthError: the link is not usable; a dead grant is then marked for
            relinking and the host emailed.
        """
        if not force_refresh and (loaded := self._loaded(link_id)) is not None:
            return crypto.decrypt(loaded.access_token_enc)
        with _independent_session() as session:
            link = self._usable(session, link_id)
            if not force_refresh and link.access_expires_at > clock.now() + REFRESH_AHEAD:
                return crypto.decrypt(link.access_token_enc)
            seen = link.access_token_enc
        with get_redis().lock(self._lock_name(link_id), timeout=30, blocking_timeout=35):
            with _independent_session() as session:
                session.connection(execution_options={"sqlite_immediate": True})
                link = self._usable(session, link_id)
                if link.access_token_enc != seen and link.access_expires_at > clock.now() + REFRESH_AHEAD:
                    return crypto.decrypt(link.access_token_enc)  # another process just refreshed
                used_refresh = link.refresh_token_enc
                try:
                    tokens = self.refresh(crypto.decrypt(used_refresh))
                except ProviderAuthError as exc:
                    session.rollback()
                    if not self.grant_is_dead(exc):
                        log.error("%s token refresh refused for link %s: %s", self.key, link_id, exc)
                        raise
                    session.connection(execution_options={"sqlite_immediate": True})
                    link = session.get(self.model, link_id, populate_existing=True)
                    if link is not None and link.refresh_token_enc != used_refresh and link.has_grant:
                        return crypto.decrypt(link.access_token_enc)  # rotated or relinked meanwhile
                    session.close()
                    self.mark_broken(link_id, LinkBreak.GRANT_LOST)
                    raise
                self.store(link, tokens)
                session.commit()  # stored before the new access token is used
                return tokens.access_token

    def _loaded(self, link_id: int):
        """The link as the caller's session already holds it, when its access token is usable as
        it is: no query. An outbox batch reads its hosts' links in one query and then checks a
        meeting per lesson; each check used to read its link again in a session of its own. (A
        token another process refreshed since is still the one the tool gave; were it refused,
        the 401 asks again with ``force_refresh``, which reads the row afresh.)"""
        link = db.session.identity_map.get(identity_key(self.model, link_id))
        if link is None or inspect(link).expired_attributes & {"status", "access_token_enc", "access_expires_at"}:
            return None
        if not link.has_grant or link.access_expires_at <= clock.now() + REFRESH_AHEAD:
            return None
        return link

    def _usable(self, session: Session, link_id: int):
        link = session.get(self.model, link_id)
        if link is None or not link.has_grant:
            raise ProviderAuthError(f"{self.key} link is not active")
        return link

    def mark_broken(self, link_id: int, reason: LinkBreak) -> None:
        """Mark the link as needing relinking and email the host (once per breakage); own transaction."""
        with _independent_session() as session:
            session.connection(execution_options={"sqlite_immediate": True})
            link = session.get(self.model, link_id)
            if link is None or link.status == LinkStatus.NEEDS_RELINK:
                return
            if link.status == LinkStatus.OFF:
                # OFF already: nothing to relink. The meetings it was deleting stay DELETE_FAILED
                # (LINK_BROKEN), which the host sees with what to do.
                session.delete(link)
                session.commit()
                return
            link.status = LinkStatus.NEEDS_RELINK
            link.broken_reason = reason.value
            host = session.get(User, link.host_id)
            queue_email(self.relink_email, to_email=host.email, to_name=host.display_name, locale=host.locale,
                        host_id=host.id, payload={"reason": reason.value}, session=session)
            session.commit()

    def finish_off(self, host_id: int, tool) -> bool:
        """A link turned OFF with nothing left to delete on the tool: revoke its grant and forget it;
        commits. Returns True when it was forgotten."""
        from app.meetings import switch  # the wing's switch builds on the tools' links

        link = db.session.scalar(select(self.model).where(self.model.host_id == host_id,
                                                          self.model.status == LinkStatus.OFF))
        if link is None or switch.live_meetings(host_id, tool):
            db.session.commit()
            return False
        link_id = link.id
        db.session.commit()  # no transaction is held while the tool is called
        try:
            self.revoke(link_id)
        except ProviderError as exc:  # the grant is dead or the tool is down: our copy goes either way
            log.warning("%s revoke failed for link %s: %s", self.key, link_id, exc)
        begin_write()
        link = db.session.get(self.model, link_id)
        if link is not None and link.status == LinkStatus.OFF:
            db.session.delete(link)
        db.session.commit()
        return True
