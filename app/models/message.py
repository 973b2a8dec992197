"""Bulk messages (メッセージ一括送信) from a host to the guests of one service."""
import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime

SUBJECT_MAX = 150
BODY_MAX = 5000


class MessageStatus(str, enum.Enum):
    #: Waiting for ``scheduled_at``; can still be edited or cancelled.
    SCHEDULED = "scheduled"
    #: One of its slots was cancelled before it started: the host decides.
    HELD = "held"
    #: Recipients written to the outbox; the workers are sending.
    SENDING = "sending"
    CANCELLED = "cancelled"


class Message(db.Model):
    """One message to the guests of one service (some of its slots, or all upcoming ones)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    #: Chosen slots; empty with ``all_upcoming`` = every upcoming slot at send time.
    slot_ids: Mapped[list] = mapped_column(JSON, default=list)
    all_upcoming: Mapped[bool] = mapped_column(default=False)
    #: The host's text with {placeholders}; resolved per recipient at send time, never as a template.
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[MessageStatus] = mapped_column(Enum(MessageStatus, native_enum=False, length=20))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    held_reason: Mapped[str] = mapped_column(String(300), default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Recipients written at fan-out.
    total: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    service = relationship("Service")
