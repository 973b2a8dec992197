"""The guests of a slot as the host sees them: a page at a time, searched, with their email states;
those who cancelled, with when and how; the whole list as a CSV file; a message to one guest.

A slot may have a thousand guests, so nothing here loads a slot's whole guest list as objects:
pages are LIMIT/OFFSET queries of the few columns the pages show, email states are read for the
guests on the page only, in the same statement, and the CSV file is one query of plain columns.
"""
import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import quote

from flask_babel import gettext as _
from sqlalchemy import Row, and_, bindparam, case, func, or_, select

from app import clock
from app.extensions import db
from app.mail.guest import guest_email_context
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Slot, User, Venue
from app.pagination import Page

#: Guests per page on a slot's page.
GUESTS_PER_PAGE = 50
#: The longest search the slot page accepts (names are 80 characters, emails 254).
SEARCH_MAX = 100
#: The emails whose state the host sees per guest (a message to the guest: the latest one).
TIMELINE_KINDS = ("booking_confirmation", "meeting_url", "guest_message")
#: From this many hours before the start (until the end), a guest of an online lesson whose URL
#: email was sent and who has not opened their join page (``/j/<token>/go``) is pointed out.
NOT_OPENED_HOURS = 3
#: Services whose guests get a URL email and join through ``/j/``.
URL_VENUES = (Venue.ZOOM, Venue.GOOGLE_MEET)
#: A 5xx reply in an SMTP error as the outbox records it (``…: (550, b'5.1.1 no such user')``):
#: the receiving server refused the address for good (``outbox._is_permanent``).
_REFUSAL = re.compile(r"\(5\d\d,")


def refused(delivery) -> bool:
    """The address does not take mail: the email (a row or ``Delivery`` with ``status``,
    ``last_error`` and ``bounced_at``) failed on a permanent SMTP refusal (5xx at send time), or
    left us and bounced later (a DSN, read by ``app.mail.bounces``)."""
    return delivery is not None and (delivery.bounced_at is not None or (
        delivery.status == DeliveryStatus.FAILED and bool(_REFUSAL.search(delivery.last_error or ""))))


def opening_watched(slot: Slot, now: datetime | None = None) -> bool:
    """Whether the slot's guests who have not opened their join page are pointed out now: an
    open online (video tool) slot from ``NOT_OPENED_HOURS`` before its start until its end."""
    now = now or clock.now()
    return (slot.is_open and slot.service.venue in URL_VENUES
            and slot.starts_at - timedelta(hours=NOT_OPENED_HOURS) <= now < slot.ends_at)


@dataclass(slots=True)
class Guest:
    """A guest on a slot's page, with the state of the emails the host sees per guest."""

    id: int
    guest_name: str
    guest_email: str
    #: When the guest pressed 「参加する」 on their join page (``/j/<token>/go``), or None.
    join_opened_at: datetime | None = None
    #: The latest email of each ``TIMELINE_KINDS`` kind about this booking (a row with
    #: ``status``, ``due_at``, ``sent_at``, ``last_error`` and ``bounced_at``), or None.
    booking_confirmation: Row | None = None
    meeting_url: Row | None = None
    guest_message: Row | None = None
    #: The guest's latest email was refused for good or bounced (``refused``):
    #: 「このメールアドレスには届きません」.
    undeliverable: bool = False
    #: Within ``NOT_OPENED_HOURS`` of an online lesson, the URL email sent (and not bounced), the
    #: join page not opened yet: 「まだ参加URLを開いていません」 (``opening_watched``).
    not_opened: bool = False


def _confirmed_guests(search: str = ""):
    """The slot's (``slot_id``) confirmed bookings in booking order, searched if ``search`` is given."""
    columns = Booking.__table__.c
    statement = (select(columns.id, columns.guest_name, columns.guest_email, columns.join_opened_at)
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
                   deliveries.last_error, deliveries.bounced_at)
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
        latest: dict[int, Row] = {}
        for row in db.session.execute(statement, {**params, "limit": per_page, "offset": shown.offset}).all():
            guest = by_id.get(row.id)
            if guest is None:
                guest = by_id[row.id] = Guest(row.id, row.guest_name, row.guest_email, row.join_opened_at)
            if row.kind is not None:
                setattr(guest, row.kind, row)  # in id order, so the latest email of a kind wins
                latest[row.id] = row
        watched = opening_watched(slot)
        for guest in by_id.values():
            guest.undeliverable = refused(latest.get(guest.id))
            # A URL email that bounced never arrived: the guest could not open it (the issue's "no
            # /j/ visit and the URL email not bounced"); its row already reads undeliverable.
            guest.not_opened = (watched and guest.join_opened_at is None and guest.meeting_url is not None
                                and guest.meeting_url.status == DeliveryStatus.SENT
                                and not refused(guest.meeting_url) and not guest.undeliverable)
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


# --- those who cancelled ---------------------------------------------------------------------------

#: Cancelled guests named on a slot's page (the rest are counted; the CSV file has them all).
CANCELLED_SHOWN = 50


def _cancelled_how():
    """How a cancelled booking ended, as a column: ``host`` (the host removed it, 「予約を取り消す」),
    ``slot`` (the date was cancelled: its guests got the 「開催中止」 email) or ``guest`` (the
    guest's own cancellation)."""
    columns, deliveries = Booking.__table__.c, Delivery.__table__.c
    slot_cancelled = (select(deliveries.id)
                      .where(deliveries.booking_id == columns.id, deliveries.kind == "slot_cancelled").exists())
    return case((slot_cancelled, "slot"), (columns.cancelled_by_host, "host"), else_="guest").label("cancelled_how")


@cache
def _cancelled_statement():
    # Built once, run with ``slot_id`` and ``limit``; the window count says how many there are
    # in all, in the same statement.
    columns = Booking.__table__.c
    return (select(columns.id, columns.guest_name, columns.guest_email, columns.created_at, columns.cancelled_at,
                   _cancelled_how(), func.count().over().label("total"))
            .where(columns.slot_id == bindparam("slot_id"), columns.status == BookingStatus.CANCELLED)
            .order_by(columns.cancelled_at.desc(), columns.id.desc())
            .limit(bindparam("limit")))


def cancelled_guests(slot: Slot, limit: int = CANCELLED_SHOWN) -> tuple[list[Row], int]:
    """The slot's cancelled bookings, the latest cancellation first, at most ``limit``, and how
    many there are in all. Rows with ``id``, ``guest_name``, ``guest_email``, ``created_at``,
    ``cancelled_at`` and ``cancelled_how`` (``host``, ``slot`` or ``guest``: ``_cancelled_how``)."""
    rows = db.session.execute(_cancelled_statement(), {"slot_id": slot.id, "limit": limit}).all()
    return rows, rows[0].total if rows else 0


# --- the guest list as a CSV file -------------------------------------------------------------------

#: A cell a spreadsheet would read as a formula when it starts with one of these (CSV injection):
#: such a cell gets a leading ``'``, which Excel and LibreOffice show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


@cache
def _csv_statement():
    # Built once, run with ``slot_id``: every booking of the slot, the confirmed ones first in
    # booking order, then the cancelled ones by cancellation. Plain columns, no objects: a
    # thousand guests are one query.
    columns = Booking.__table__.c
    confirmed = columns.status == BookingStatus.CONFIRMED
    return (select(columns.guest_name, columns.guest_email, columns.created_at, columns.cancelled_at,
                   confirmed.label("confirmed"), _cancelled_how())
            .where(columns.slot_id == bindparam("slot_id"))
            .order_by(case((confirmed, 0), else_=1), columns.cancelled_at, columns.id))


def csv_columns() -> list[str]:
    return [_("名前"), _("メールアドレス"), _("予約日時"), _("状態"), _("キャンセル日時"), _("キャンセルの種類")]


def guest_list_csv(slot: Slot, tz_name: str) -> str:
    """The slot's guests, confirmed then cancelled, as CSV text for Excel: a UTF-8 byte order mark
    first (without it Excel in Japan reads the file as Shift_JIS and garbles every name), CRLF line
    ends, dates in the host's time zone as ``2026/06/20 10:00`` (which Excel reads as a date), and
    no cell that a spreadsheet would run as a formula (``_cell``)."""
    how = {"host": _("ホストが取り消し"), "slot": _("開催中止"), "guest": _("予約者がキャンセル")}
    confirmed, cancelled = _("予約中"), _("キャンセル")
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(csv_columns())

    def when(moment) -> str:
        return clock.to_local(moment, tz_name).strftime("%Y/%m/%d %H:%M") if moment else ""

    for row in db.session.execute(_csv_statement(), {"slot_id": slot.id}):
        writer.writerow([_cell(row.guest_name), _cell(row.guest_email), when(row.created_at),
                         confirmed if row.confirmed else cancelled, "" if row.confirmed else when(row.cancelled_at),
                         "" if row.confirmed else how[row.cancelled_how]])
    return out.getvalue()


def csv_disposition(slot: Slot, tz_name: str) -> str:
    """``Content-Disposition`` of the CSV file: an ASCII name for old clients, and the Japanese
    name (service title and date) as RFC 5987 ``filename*`` for every browser of today."""
    day = clock.to_local(slot.starts_at, tz_name)
    title = "".join("_" if ch in '\\/:*?"<>|' or ord(ch) < 32 or ch == "\x7f" else ch
                    for ch in slot.service.title)[:40].strip() or "guests"
    ascii_name = f"guests-{slot.id}-{day:%Y%m%d-%H%M}.csv"
    name = _("予約者_%(title)s_%(when)s.csv", title=title, when=f"{day:%Y%m%d-%H%M}")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- a message to one guest --------------------------------------------------------------------------

class NotMessageable(Exception):
    """The booking can no longer receive a message from its slot's page (text for the host)."""


def send_message(host: User, booking: Booking, subject: str, body: str):
    """Queue the host's message to this one guest (「メッセージを送る」 on a slot's page).

    Its own small email kind through the outbox, not the bulk composer (``app.messages.bulk``)
    with a filter of one booking: a bulk message is a ``Message`` row scoped to slots (a
    booking filter would be a new column), with scheduling, placeholders, a progress page and
    a daily limit of its own, none of which a note to one named person needs. One email to one
    guest is what 「URLを再送」 and 「予約を取り消す」 send, and it is counted as they are:
    against the host's daily budget of guest emails, which the caller spends first
    (``limits.spend_host_notices``). The text goes into the email as typed (no placeholders:
    the host writes to a person they see), and the slot's page shows the latest one's state.

    :raises NotMessageable: the booking was cancelled, or its date was.
    """
    if not booking.is_confirmed:
        raise NotMessageable(_("このご予約はキャンセルされているため、メッセージは送れません。"))
    if not booking.slot.is_open:
        raise NotMessageable(_("この開催日時は中止されているため、メッセージは送れません。"))
    return queue_email("guest_message", to_email=booking.guest_email, to_name=booking.guest_name,
                       host_id=host.id, booking_id=booking.id, slot_id=booking.slot_id,
                       payload={"subject": subject, "body": body})


@email_kind("guest_message", subject=lambda ctx: ctx["subject_text"])
def _guest_message_context(delivery: Delivery) -> dict:
    ctx = guest_email_context(delivery)
    if not ctx["booking"].is_confirmed or not ctx["slot"].is_open:
        raise SkipDelivery("booking or slot cancelled before the message was sent")
    return {**ctx, "subject_text": delivery.payload.get("subject", ""), "body_text": delivery.payload.get("body", "")}
