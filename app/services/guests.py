"""The guests of a slot as the host sees them: a page at a time, searched, with their email states.

A slot may have a thousand guests, so nothing here loads a slot's whole guest list: pages are
LIMIT/OFFSET queries of the few columns the pages show, and email states are read for the
guests on the page only, in the same statement.
"""
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Row, and_, bindparam, func, or_, select

from app.extensions import db
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Slot
from app.pagination import Page

#: Guests per page on a slot's page.
GUESTS_PER_PAGE = 50
#: The longest search the slot page accepts (names are 80 characters, emails 254).
SEARCH_MAX = 100
#: The emails whose state the host sees per guest.
TIMELINE_KINDS = ("booking_confirmation", "meeting_url")


@dataclass(slots=True)
class Guest:
    """A guest on a slot's page, with the state of the emails the host sees per guest."""

    id: int
    guest_name: str
    guest_email: str
    #: The latest email of each ``TIMELINE_KINDS`` kind about this booking (a row with
    #: ``status``, ``due_at``, ``sent_at`` and ``last_error``), or None.
    booking_confirmation: Row | None = None
    meeting_url: Row | None = None


def _confirmed_guests(search: str = ""):
    """The slot's (``slot_id``) confirmed bookings in booking order, searched if ``search`` is given."""
    columns = Booking.__table__.c
    statement = (select(columns.id, columns.guest_name, columns.guest_email)
                 .where(columns.slot_id == bindparam("slot_id"), columns.status == BookingStatus.CONFIRMED)
                 .order_by(columns.id))
    if search:
        statement = statement.where(or_(columns.guest_name.icontains(search, autoescape=True),
                                        columns.guest_email.icontains(search, autoescape=True)))
    return statement


def _with_email_states(guests):
    """A page of guests (``limit``, ``offset``) and their ``TIMELINE_KINDS`` emails, a row per email.

    One statement instead of a page and then its states: on PostgreSQL each statement is a round
    trip and work for the database backend on the same cores.
    """
    page = guests.limit(bindparam("limit")).offset(bindparam("offset")).subquery()
    deliveries = Delivery.__table__.c
    return (select(page, deliveries.kind, deliveries.status, deliveries.due_at, deliveries.sent_at,
                   deliveries.last_error)
            .outerjoin_from(page, Delivery.__table__,
                            and_(deliveries.booking_id == page.c.id, deliveries.slot_id == bindparam("slot_id"),
                                 deliveries.kind.in_(TIMELINE_KINDS)))
            .order_by(page.c.id, deliveries.id))


@cache
def _unsearched_page_statement():
    # Built once, run with ``slot_id``, ``limit`` and ``offset``: building it costs more than
    # running it. A search builds its own (its text is escaped into the statement).
    return _with_email_states(_confirmed_guests())


def guest_page(slot: Slot, page: int, search: str = "", per_page: int = GUESTS_PER_PAGE) -> Page:
    """One page of the slot's confirmed guests in booking order, each a ``Guest`` with its email states.

    Only emails about this slot count (a booking's emails carry its slot's id); of several of a
    kind, the latest.

    :param search: keep only guests whose name or email contains it (case-insensitive; ``%``
        and ``_`` are matched literally).
    """
    search = search.strip()[:SEARCH_MAX]
    params = {"slot_id": slot.id}
    if search:
        guests = _confirmed_guests(search)
        total = db.session.scalar(select(func.count()).select_from(guests.order_by(None).subquery()), params)
        statement = _with_email_states(guests)
    else:
        # Unsearched, the list is the slot's confirmed bookings, which ``booked_count`` counts (it
        # moves with every booking and cancellation, in the same transaction): no COUNT needed.
        total = slot.booked_count
        statement = _unsearched_page_statement()
    shown = Page.at(page, per_page, total)
    if total:
        by_id: dict[int, Guest] = {}
        for row in db.session.execute(statement, {**params, "limit": per_page, "offset": shown.offset}).all():
            guest = by_id.get(row.id)
            if guest is None:
                guest = by_id[row.id] = Guest(row.id, row.guest_name, row.guest_email)
            if row.kind is not None:
                setattr(guest, row.kind, row)  # in id order, so the latest email of a kind wins
        shown.items = list(by_id.values())
    return shown


@cache
def _first_guests_statement():
    # Built once, run with ``slot_ids`` and ``limit`` (building it takes longer than running it).
    columns = Booking.__table__.c
    ranked = (select(columns.slot_id, columns.id, columns.guest_name, columns.guest_email, columns.created_at,
                     func.row_number().over(partition_by=columns.slot_id, order_by=columns.id).label("rank"))
              .where(columns.slot_id.in_(bindparam("slot_ids", expanding=True)),
                     columns.status == BookingStatus.CONFIRMED)
              .subquery())
    return select(ranked).where(ranked.c.rank <= bindparam("limit")).order_by(ranked.c.slot_id, ranked.c.id)


def first_guests(slot_ids: list[int], limit: int) -> dict[int, list[Row]]:
    """The first ``limit`` confirmed guests of each of these slots, in one query (a window function).

    ``{slot_id: [row, …]}``; rows with ``id``, ``guest_name``, ``guest_email`` and ``created_at``.
    Slots without guests are absent.
    """
    if not slot_ids:
        return {}
    guests: dict[int, list[Row]] = {}
    for row in db.session.execute(_first_guests_statement(), {"slot_ids": slot_ids, "limit": limit}).all():
        guests.setdefault(row.slot_id, []).append(row)
    return guests


#: Cancelled guests who hold the URL, named on a slot's page at most.
URL_HOLDERS_SHOWN = 50


def cancelled_url_holders(slot: Slot) -> list[Row]:
    """Guests of the slot who cancelled after their URL email was sent: they still know the
    meeting's URL (the ``/j/`` link stops working for them, the URL itself does not).

    Rows with ``guest_name``, ``guest_email`` and ``cancelled_at``, the latest first.
    """
    columns, deliveries = Booking.__table__.c, Delivery.__table__.c
    sent = (select(deliveries.id).where(deliveries.booking_id == columns.id, deliveries.kind == "meeting_url",
                                        deliveries.status == DeliveryStatus.SENT).exists())
    return db.session.execute(
        select(columns.guest_name, columns.guest_email, columns.cancelled_at)
        .where(columns.slot_id == slot.id, columns.status == BookingStatus.CANCELLED, sent)
        .order_by(columns.cancelled_at.desc()).limit(URL_HOLDERS_SHOWN)).all()
