"""The guests of a slot as the host sees them: a page at a time, searched, with their email states.

A slot may have a thousand guests, so nothing here loads a slot's whole guest list: pages are
LIMIT/OFFSET queries of the few columns the pages show, and email states are read for the
guests on the page only.
"""
from functools import cache

from sqlalchemy import Row, bindparam, func, or_, select

from app.extensions import db
from app.models import Booking, BookingStatus, Delivery, Slot
from app.pagination import Page, paginate

#: Guests per page on a slot's page.
GUESTS_PER_PAGE = 50
#: The longest search the slot page accepts (names are 80 characters, emails 254).
SEARCH_MAX = 100
#: The emails whose state the host sees per guest.
TIMELINE_KINDS = ("booking_confirmation", "zoom_url")


def guest_page(slot: Slot, page: int, search: str = "", per_page: int = GUESTS_PER_PAGE) -> Page:
    """One page of the slot's confirmed guests in booking order, as rows.

    Each row has ``id``, ``guest_name`` and ``guest_email``.

    :param search: keep only guests whose name or email contains it (case-insensitive; ``%``
        and ``_`` are matched literally).
    """
    statement = (select(Booking.id, Booking.guest_name, Booking.guest_email)
                 .where(Booking.slot_id == slot.id, Booking.status == BookingStatus.CONFIRMED)
                 .order_by(Booking.id))
    search = search.strip()[:SEARCH_MAX]
    if search:
        statement = statement.where(or_(Booking.guest_name.icontains(search, autoescape=True),
                                        Booking.guest_email.icontains(search, autoescape=True)))
    # Unsearched, the list is the slot's confirmed bookings, which ``booked_count`` counts (it
    # moves with every booking and cancellation, in the same transaction): no COUNT needed.
    total = None if search else slot.booked_count
    return paginate(statement, page, per_page, total=total, scalars=False)


@cache
def _states_statement():
    # Built once, run with ``slot_id`` and ``booking_ids``: building a statement costs more than
    # running this one. Plain table columns: no ORM entities to load.
    columns = Delivery.__table__.c
    return (select(columns.booking_id, columns.kind, columns.status, columns.due_at, columns.sent_at,
                   columns.last_error)
            .where(columns.booking_id.in_(bindparam("booking_ids", expanding=True)),
                   columns.slot_id == bindparam("slot_id"), columns.kind.in_(TIMELINE_KINDS))
            .order_by(columns.id))


def email_states(slot_id: int, booking_ids: list[int]) -> dict[int, dict[str, Row]]:
    """The latest confirmation and URL email of each of these bookings, in one query.

    ``{booking_id: {kind: row}}``; a row has ``status``, ``due_at``, ``sent_at`` and
    ``last_error``. Only rows about this slot count (a booking's emails carry its slot's id).
    """
    if not booking_ids:
        return {}
    states: dict[int, dict[str, Row]] = {}
    for row in db.session.execute(_states_statement(), {"slot_id": slot_id, "booking_ids": booking_ids}):
        states.setdefault(row.booking_id, {})[row.kind] = row  # by id, so the latest row of a kind wins
    return states


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

    ``{slot_id: [row, …]}``; rows as in ``guest_page``, with ``created_at``. Slots without guests
    are absent.
    """
    if not slot_ids:
        return {}
    guests: dict[int, list[Row]] = {}
    for row in db.session.execute(_first_guests_statement(), {"slot_ids": slot_ids, "limit": limit}):
        guests.setdefault(row.slot_id, []).append(row)
    return guests
