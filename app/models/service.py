"""Services (サービス) that hosts sell, and their slots (開催日時)."""
import enum
import secrets
from datetime import datetime, timedelta

from sqlalchemy import false as sa_false, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.booking import BookingStatus
from app.models.types import UTCDateTime

TITLE_MAX = 100
DESCRIPTION_MAX = 2000
HOST_NOTES_MAX = 2000
VENUE_ADDRESS_MAX = 200
CANCELLATION_POLICY_MAX = 1000
MEETING_URL_MAX = 500


class ServiceKind(str, enum.Enum):
    """The four service types of the platform."""

    ONLINE = "online"
    CLASS_EVENT = "class_event"
    PRIVATE = "private"
    SUBSCRIPTION = "subscription"


class Venue(str, enum.Enum):
    """Where a service happens."""

    #: Zoom meeting issued automatically on the host's linked account.
    ZOOM = "zoom"
    #: Google Meet link issued automatically on the host's linked Google calendar.
    GOOGLE_MEET = "google_meet"
    #: The host's own fixed meeting URL (``Service.meeting_url``), sent like an issued one.
    FIXED_URL = "fixed_url"
    #: No URL from the product: the host hands it out (usually in the host notes).
    MANUAL_URL = "manual_url"
    IN_PERSON = "in_person"


class SlotStatus(str, enum.Enum):
    OPEN = "open"
    CANCELLED = "cancelled"


def new_public_id() -> str:
    """An unguessable id for public URLs."""
    return secrets.token_urlsafe(12)


class Service(db.Model):
    """One offering of a host, with the text that goes into its emails."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: Unguessable id used in the guest-facing URL.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    kind: Mapped[ServiceKind] = mapped_column(Enum(ServiceKind, native_enum=False, length=20))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int]
    capacity: Mapped[int]
    venue: Mapped[Venue] = mapped_column(Enum(Venue, native_enum=False, length=20))
    #: ホストからの連絡事項: plain text included in the confirmation email.
    host_notes: Mapped[str] = mapped_column(Text, default="")
    #: Where an in-person (対面) service takes place: shown to guests before they book and in
    #: their emails (one line; empty for online services).
    venue_address: Mapped[str] = mapped_column(String(VENUE_ADDRESS_MAX), default="", server_default="")
    #: キャンセルポリシー: the host's own words (free text), shown before booking and in the confirmation.
    cancellation_policy: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: Guests may move their booking to another open date of this service until this many hours
    #: before the start of their date (「日時を変更」); None: they cannot (they contact the host).
    reschedule_cutoff_hours: Mapped[int | None] = mapped_column(default=24, server_default="24", nullable=True)
    #: The guest's lesson page (``/j/<token>``) enables 「参加する」 this many minutes before the start.
    join_opens_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    #: The host's own meeting URL, for ``Venue.FIXED_URL`` (https only).
    meeting_url: Mapped[str] = mapped_column(String(MEETING_URL_MAX), default="", server_default="")
    #: The URL email goes out this many hours before the start (24, 48 or 72; later bookings get it at once).
    url_lead_hours: Mapped[int] = mapped_column(default=24, server_default="24")
    #: Reminders to each guest, as minutes before the start, comma-separated ("60,10"); "" for none.
    reminder_minutes: Mapped[str] = mapped_column(String(40), default="", server_default="")
    #: Each guest gets their own join URL (Zoom registrants; a Licensed Zoom host only).
    per_guest_links: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    host = relationship("User", back_populates="services")
    slots = relationship("Slot", back_populates="service", order_by="Slot.starts_at")

    __table_args__ = (
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
    )

    @property
    def is_online(self) -> bool:
        """True for services held over video."""
        return self.venue in (Venue.ZOOM, Venue.GOOGLE_MEET, Venue.FIXED_URL, Venue.MANUAL_URL)


class Slot(db.Model):
    """A date and time (開催日時) at which a service is held."""

    __tablename__ = "slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Seats of this slot (copied from the service when the slot is created).
    capacity: Mapped[int]
    #: Confirmed bookings; updated with a guarded UPDATE so two guests never share the last seat.
    booked_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[SlotStatus] = mapped_column(
        Enum(SlotStatus, native_enum=False, length=20), default=SlotStatus.OPEN
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: When the earliest of its bookings (cancelled ones too) was made; never later than any of
    #: them. A slot booked only after a host linked Zoom has no booking the link misses.
    first_booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    service = relationship("Service", back_populates="slots")
    bookings = relationship("Booking", back_populates="slot", order_by="Booking.id")

    __table_args__ = (
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="seats_within_capacity"),
        Index("ix_slots_service_starts", "service_id", "starts_at"),
    )

    @property
    def ends_at(self) -> datetime:
        """When the slot ends, from the service duration."""
        return self.starts_at + timedelta(minutes=self.service.duration_minutes)

    @property
    def confirmed_bookings(self) -> list:
        """The slot's confirmed bookings."""
        return [b for b in self.bookings if b.status == BookingStatus.CONFIRMED]

    @property
    def seats_left(self) -> int:
        """Seats still free."""
        return max(self.capacity - self.booked_count, 0)

    @property
    def is_open(self) -> bool:
        return self.status == SlotStatus.OPEN

    def is_bookable(self, at: datetime) -> bool:
        """Open, in the future and not full."""
        return self.is_open and self.starts_at > at and self.seats_left > 0
