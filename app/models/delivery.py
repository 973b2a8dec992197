"""The email outbox: one row per email, written in the transaction that causes it."""
import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"
    #: Claimed by a worker; reclaimed if the worker dies (see MAIL_CLAIM_TIMEOUT).
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Delivery(db.Model):
    """One email to one recipient. Rendered from current data at send time, not at write time."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Template name under ``templates/email/`` (``booking_confirmation``, ``password_reset`` …).
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=20), default=DeliveryStatus.PENDING
    )
    to_email: Mapped[str] = mapped_column(String(254))
    to_name: Mapped[str] = mapped_column(String(120), default="")
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    #: The host whose guests or account this email concerns (for filtering and isolation).
    host_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id"))
    #: The bulk message this row delivers, if any (progress is counted from these rows).
    bulk_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    #: Small, non-secret extra context for the renderer (ids, flags).
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Prevents writing the same email twice (e.g. ``confirmation:<booking id>``).
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    claim_token: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Message-ID header of the sent email.
    message_id: Mapped[str | None] = mapped_column(String(200))
    #: A delivery status notification (DSN) came back for this email after it was sent: when, and
    #: its status code and diagnostic ("5.1.1 user unknown"). The row stays SENT (it left us);
    #: the host's pages read it as undeliverable.
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounce_reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    booking = relationship("Booking")
    host = relationship("User", foreign_keys=[host_id])

    __table_args__ = (Index("ix_deliveries_status_due", "status", "due_at"),)
