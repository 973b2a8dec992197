"""The context every email about one booking starts from."""
from app.booking.carriers import carrier_guidance
from app.extensions import db
from app.mail.render import SkipDelivery
from app.models import Booking, Delivery
from app.urls import external_url


def guest_email_context(delivery: Delivery) -> dict:
    """Context shared by emails about one booking: booking, slot, service, host, links."""
    booking = db.session.get(Booking, delivery.booking_id)
    if booking is None:
        raise SkipDelivery("booking deleted")
    slot = booking.slot
    service = slot.service
    return {
        "booking": booking,
        "slot": slot,
        "service": service,
        "host": service.host,
        "tz": service.host.timezone,
        "cancel_url": external_url("booking.cancel", token=booking.cancel_token),
        # 「日時を変更」: only for a confirmed booking of a service that lets guests move it (app.booking.reschedule).
        "reschedule_url": (external_url("booking.reschedule", token=booking.cancel_token)
                           if booking.is_confirmed and service.reschedule_cutoff_hours is not None else None),
        "service_url": external_url("booking.service_page", public_id=service.public_id),
        # A carrier address (docomo, au, SoftBank): the 「受信設定」 steps for the sender domain, or None.
        "carrier_help": carrier_guidance(booking.guest_email),
    }
