"""Bookings made by guests (who never log in)."""
import enum
import secrets
from datetime import datetime

from sqlalchemy import Text, Enum, ForeignKey, Index, String, false as sa_false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime

GUEST_NAME_MAX = 80


class BookingStatus(str, enum.Enum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


def new_token() -> str:
    """An unguessable token for links in guest emails."""
    return secrets.token_urlsafe(24)


class Booking(db.Model):
    """One guest's seat in one slot."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), index=True)
    guest_name: Mapped[str] = mapped_column(String(GUEST_NAME_MAX))
    #: Stored lower-cased, as typed.
    guest_email: Mapped[str] = mapped_column(String(254))
    #: The mailbox the email delivers to (``app.limits.mailbox_of``: no ``+tag``), so the same
    #: guest cannot book one slot twice, plus-addressed or not.
    mailbox: Mapped[str] = mapped_column(String(254))
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, native_enum=False, length=20), default=BookingStatus.CONFIRMED
    )
    #: Secret in the guest's cancel link.
    cancel_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    #: Secret in the guest's stable join link ``/j/<token>``.
    join_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the guest first pressed 「参加する」 on their lesson page (a mail scanner opening the
    #: link changes nothing); None: not yet.
    join_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The host removed the booking (not the guest's own cancellation: no cancellation notice to the host).
    cancelled_by_host: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    #: The guest's registration on the slot's Zoom meeting when the service gives per-guest links:
    #: the registrant id (the one participant field stable across leaving and rejoining), the
    #: guest's own join URL, and the meeting it belongs to (a re-issued meeting needs a new one).
    registrant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registrant_join_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    registrant_meeting_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Attendance: "present" / "absent", None while unknown; the minutes attended (from the video
    #: tool's participant events); whether the match was a guess (display name, not registrant or
    #: email); and whether the host set it by hand (events then no longer change it).
    attendance: Mapped[str | None] = mapped_column(String(10), nullable=True)
    attended_minutes: Mapped[int | None] = mapped_column(nullable=True)
    attendance_estimated: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    attendance_by_host: Mapped[bool] = mapped_column(default=False, server_default=sa_false())

    slot = relationship("Slot", back_populates="bookings")

    __table_args__ = (
        # A slot's bookings made before a moment (the Zoom settings page lists the upcoming ones
        # made before the host linked Zoom): an index range per slot instead of reading every row.
        Index("ix_bookings_slot_created", "slot_id", "created_at"),
        # One confirmed booking per mailbox and slot (cancelled ones may repeat).
        Index(
            "uq_bookings_slot_mailbox_confirmed",
            "slot_id",
            "mailbox",
            unique=True,
            sqlite_where=text("status = 'CONFIRMED'"),
            postgresql_where=text("status = 'CONFIRMED'"),
        ),
    )

    @property
    def is_confirmed(self) -> bool:
        return self.status == BookingStatus.CONFIRMED
