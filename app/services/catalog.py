"""A host's services: creating, editing and the owner-checked lookups every view uses."""
from functools import cache

from flask import abort
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Booking, Meeting, Service, ServiceKind, Slot, User, Venue
from app.pagination import Page, paginate

#: Services per page on the list of services.
SERVICES_PER_PAGE = 20
#: ``save_service``: leave the value as it is.
KEEP = object()


def get_own_service_or_404(service_id: int, host: User) -> Service:
    """The host's own service; 404 for anybody else's (never reveal that it exists)."""
    service = db.session.get(Service, service_id)
    if service is None or service.host_id != host.id:
        abort(404)
    return service


@cache
def _slot_statement(with_meeting: bool):
    # Built once, run with ``slot_id``: every slot view starts with it.
    statement = select(Slot).options(joinedload(Slot.service)).where(Slot.id == bindparam("slot_id"))
    if with_meeting:
        statement = statement.add_columns(Meeting).outerjoin(Meeting, Meeting.slot_id == Slot.id)
    return statement


def get_own_slot_or_404(slot_id: int, host: User) -> Slot:
    """The host's own slot (its service loaded in the same query); 404 for anybody else's."""
    slot = db.session.scalar(_slot_statement(False), {"slot_id": slot_id})
    if slot is None or slot.service.host_id != host.id:
        abort(404)
    return slot


def get_own_slot_and_meeting_or_404(slot_id: int, host: User) -> tuple[Slot, Meeting | None]:
    """``get_own_slot_or_404``, and the slot's meeting row (if any) from the same query.

    For the slot's page, which shows both: one statement fewer on every view of it.
    """
    row = db.session.execute(_slot_statement(True), {"slot_id": slot_id}).first()
    if row is None or row[0].service.host_id != host.id:
        abort(404)
    return row[0], row[1]


def get_own_booking_or_404(booking_id: int, host: User) -> Booking:
    """A booking of one of the host's slots; 404 for anybody else's."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.slot.service.host_id != host.id:
        abort(404)
    return booking


def has_services(host: User) -> bool:
    """Whether the host has created any service yet."""
    return db.session.scalar(select(Service.id).where(Service.host_id == host.id).limit(1)) is not None


def host_services(host: User) -> list[Service]:
    """All services of a host, newest first."""
    return db.session.scalars(_host_services(host)).all()


def services_page(host: User, page: int, per_page: int = SERVICES_PER_PAGE) -> Page:
    """A page of the host's services, newest first."""
    return paginate(_host_services(host), page, per_page)


def _host_services(host: User):
    return select(Service).where(Service.host_id == host.id).order_by(Service.id.desc())


def save_service(service: Service, *, kind: str, title: str, description: str, duration_minutes: int,
                 capacity: int, venue: str, host_notes: str, venue_address: str = "", meeting_url: str = "",
                 cancellation_policy: str = "", reschedule_cutoff_hours: int | None | object = KEEP,
                 join_opens_minutes: int | object = KEEP, url_lead_hours: int | object = KEEP,
                 reminder_minutes: list[int] | object = KEEP, per_guest_links: bool | object = KEEP) -> Service:
    """Apply validated form values to a (new or existing) service.

    :param reschedule_cutoff_hours: until how many hours before the start guests may move their
        booking themselves (None: they cannot); left as it is when not given.
    :param join_opens_minutes: how long before the start the lesson page's 「参加する」 opens; kept when not given.
    :param url_lead_hours, reminder_minutes: the lesson-day emails' schedule (hours before the
        start for the URL email; minutes before the start for each reminder); kept when not given.
    :param per_guest_links: each guest gets their own Zoom join URL; kept when not given.

    :param venue_address: kept for an in-person service only (an online one has no address to show).
    """
    service.kind = ServiceKind(kind)
    service.title = title.strip()
    service.description = description or ""
    service.duration_minutes = duration_minutes
    service.capacity = capacity
    service.venue = Venue(venue)
    service.venue_address = (venue_address or "").strip() if service.venue == Venue.IN_PERSON else ""
    service.meeting_url = (meeting_url or "").strip() if service.venue == Venue.FIXED_URL else ""
    service.host_notes = host_notes or ""
    service.cancellation_policy = (cancellation_policy or "").strip()
    if reschedule_cutoff_hours is not KEEP:
        service.reschedule_cutoff_hours = reschedule_cutoff_hours
    if join_opens_minutes is not KEEP:
        service.join_opens_minutes = join_opens_minutes
    if url_lead_hours is not KEEP:
        service.url_lead_hours = url_lead_hours
    if reminder_minutes is not KEEP:
        service.reminder_minutes = ",".join(str(n) for n in sorted(set(reminder_minutes), reverse=True))
    if per_guest_links is not KEEP:
        service.per_guest_links = bool(per_guest_links)
    db.session.add(service)
    db.session.flush()
    return service


def create_service(host: User, **values) -> Service:
    """A new service for ``host`` (see ``save_service`` for the values)."""
    return save_service(Service(host=host), **values)


def per_guest_links_available(host: User) -> bool:
    """Whether the host may give each guest their own join URL: Zoom's registrants need a
    Licensed (paid) host, linked and ON."""
    from app.zoom import link

    connection = link.shown_connection(host)
    return connection is not None and connection.is_active and not connection.is_basic
