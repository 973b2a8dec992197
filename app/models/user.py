"""Accounts: hosts (who sell services) and staff (who run the platform)."""
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import LargeBinary, String, Text, and_, false as sa_false, true as sa_true
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship
from werkzeug.security import check_password_hash

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime


def new_session_token() -> str:
    """A fresh random session token."""
    return secrets.token_urlsafe(32)


class User(UserMixin, db.Model):
    """A person who logs in: a host, or staff when ``is_staff`` is set."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Name shown to guests in emails ("ホスト名").
    display_name: Mapped[str] = mapped_column(String(80))
    #: A short introduction shown to guests on the booking page (plain text, optional).
    bio: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: The profile photo guests see: a small JPEG re-encoded by ``app.account.profile`` (no metadata),
    #: loaded only when served.
    photo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, nullable=True))
    #: The photo's content hash: its URL (``/photos/<digest>.jpg``), so it can be cached for good.
    photo_digest: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    #: IANA time zone the host sees times in.
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    is_staff: Mapped[bool] = mapped_column(default=False)
    #: What the session cookie carries instead of the id (Flask-Login "alternative token"):
    #: rotating it at logout or password change kills every session and remember cookie issued before.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    #: When the owner confirmed the email address (the link of the signup email, or a password
    #: reset); None until then, and the host's public pages take no bookings. Accounts created by
    #: an operator (CLI, demo data) and those from before confirmation existed count as confirmed.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Staff's second factor: the TOTP secret (base32), encrypted with ``app.crypto``; None until enrolled.
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The last TOTP time step (30 s) accepted: a code is accepted once only.
    totp_last_step: Mapped[int | None] = mapped_column(nullable=True)
    #: Where guests' replies go (``Reply-To`` of every guest email); "" means the login address.
    contact_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    #: The host chose to show the contact address on the public booking pages (never shown otherwise).
    show_contact_publicly: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    #: Host notices: 「新しいご予約がありました」 and 「ご予約がキャンセルされました」 (each on/off).
    notify_bookings: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    notify_cancellations: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    #: One email an hour listing what happened, instead of one per booking (coalesced per slot).
    notify_digest: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    #: When the host closed the account (personal data erased, bookings cancelled); None while open.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    services = relationship("Service", back_populates="host", order_by="Service.id")
    #: The host's own Zoom link and old platform link, if any. Read-only here (``app.zoom`` owns
    #: them); loaded with the user on each request, since every host page shows their state.
    #: A link turned OFF that still deletes meetings on Zoom is no link (``LinkStatus.OFF``).
    zoom_connection = relationship("ZoomConnection", uselist=False, viewonly=True,
                                   primaryjoin=lambda: _shown_link_join())
    legacy_zoom_link = relationship("LegacyZoomLink", uselist=False, viewonly=True)

    def get_id(self) -> str:
        """Flask-Login stores this in the session: the rotating token, not the database id."""
        return self.session_token

    @property
    def reply_to(self) -> str:
        """Where guests' replies reach the host: the contact address, else the login address."""
        return self.contact_email or self.email

    @property
    def email_verified(self) -> bool:
        """True once the owner confirmed the email address (the public pages take bookings)."""
        return self.email_verified_at is not None

    def end_sessions(self) -> None:
        """Invalidate every session and remember cookie of this account."""
        self.session_token = new_session_token()

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


def _shown_link_join():
    from app.models.meeting import LinkStatus
    from app.models.zoom import ZoomConnection

    return and_(User.id == ZoomConnection.host_id, ZoomConnection.status != LinkStatus.OFF)
