"""All models, importable from one place."""
from app.models.booking import Booking, BookingStatus
from app.models.delivery import Delivery, DeliveryStatus
from app.models.google import GoogleConnection
from app.models.meeting import LinkBreak, LinkStatus, Meeting, MeetingFailure, MeetingStatus, ParticipantSession
from app.models.message import Message, MessageStatus
from app.models.service import Service, ServiceKind, Slot, SlotStatus, Venue
from app.models.user import User
from app.models.zoom import LegacyStatus, LegacyZoomLink, MigrationNotice, ZoomConnection

__all__ = [
    "Booking",
    "BookingStatus",
    "Delivery",
    "DeliveryStatus",
    "GoogleConnection",
    "LegacyStatus",
    "LegacyZoomLink",
    "LinkBreak",
    "LinkStatus",
    "Meeting",
    "MeetingFailure",
    "MeetingStatus",
    "Message",
    "MessageStatus",
    "MigrationNotice",
    "ParticipantSession",
    "Service",
    "ServiceKind",
    "Slot",
    "SlotStatus",
    "User",
    "Venue",
    "ZoomConnection",
]
