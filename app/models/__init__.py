"""All models, importable from one place."""
from app.models.booking import Booking, BookingStatus
from app.models.delivery import Delivery, DeliveryStatus
from app.models.message import Message, MessageStatus
from app.models.service import Service, ServiceKind, Slot, SlotStatus, Venue
from app.models.user import User
from app.models.zoom import (LegacyStatus, LegacyZoomLink, LinkStatus, MeetingStatus, MigrationNotice,
                             ZoomConnection, ZoomMeeting)

__all__ = [
    "Booking",
    "BookingStatus",
    "Delivery",
    "DeliveryStatus",
    "Message",
    "MessageStatus",
    "Service",
    "ServiceKind",
    "Slot",
    "SlotStatus",
    "User",
    "Venue",
    "LegacyStatus",
    "LegacyZoomLink",
    "LinkStatus",
    "MigrationNotice",
    "MeetingStatus",
    "ZoomConnection",
    "ZoomMeeting",
]
