"""Host notices about guests' bookings and cancellations, through the outbox.

``booking_made`` and ``booking_cancelled`` are called by ``app.booking.booking`` in the
transaction that records the booking or the guest's cancellation. Each plans (at most) one
outbox row for what happened; the row's email is built at send time from the bookings table:

- immediate (the default): one row per slot and ``NOTICE_WINDOW`` (``dedupe_key``), due when the
  window closes, listing every booking (or guest cancellation) of that slot stamped inside it.
  A burst of bookings for a popular date is one email, or two when it straddles a window's end;
- digest (``notify_digest``): one row per host and hour of the host's clock, due when the hour
  ends, listing everything of that hour grouped by service and date.

What a row lists is chosen by time stamps (``created_at``, ``cancelled_at``), never stored in
the row: a row is a reminder that something happened in its window. The settings are read
again at send time: a notice turned off, or a closed account, stops the rows still pending
(``SkipDelivery``). A host's own removal of a booking (``cancelled_by_host``) is no news to
the host: it plans nothing and is never listed. The rows carry no ``booking_id``: they are the
host's emails, not a guest's (the outbox caps and counts guests' emails by it, and cancelling
a booking cancels its pending guest emails).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app import clock
from app.extensions import db
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import Booking, BookingStatus, Delivery, DeliveryStatus, Service, Slot, User
from app.urls import external_url

BOOKING_NOTICE = "host_booking_notice"
CANCELLATION_NOTICE = "host_cancellation_notice"
DIGEST = "host_notice_digest"

#: An immediate notice gathers its slot's bookings for this long before it is sent: a popular
#: class opening gets 20 bookings in a minute, and the host should get one email listing them,
#: not 20. Windows are fixed (aligned on the clock), so a burst makes one email per slot, or
#: two when it straddles a window's end; two minutes is still "at once" for a host.
NOTICE_WINDOW = timedelta(minutes=2)
#: A booking is stamped when its transaction starts and committed a moment later: a notice is
#: read this long after its window (or hour) closes, so one stamped at the window's last instant
#: is in the database by then and listed, not lost between two notices.
NOTICE_SETTLE = timedelta(seconds=10)
#: The digest's period.
DIGEST_PERIOD = timedelta(hours=1)


# --- planning (in the booking's transaction) ---------------------------------------------------

def booking_made(booking: Booking) -> Delivery | None:
    """A guest booked: plan the host's 「新しいご予約がありました」 (or the hour's digest)."""
    return _plan(booking.slot, clock.as_utc(booking.created_at), "notify_bookings", BOOKING_NOTICE)


def booking_cancelled(booking: Booking) -> Delivery | None:
    """A booking was cancelled: plan the host's 「ご予約がキャンセルされました」 when the guest
    cancelled it (the host's own removal is no news to the host)."""
    if booking.cancelled_by_host or booking.cancelled_at is None:
        return None
    return _plan(booking.slot, clock.as_utc(booking.cancelled_at), "notify_cancellations", CANCELLATION_NOTICE)


def _plan(slot: Slot, at: datetime, setting: str, kind: str) -> Delivery | None:
    """The row that will tell the host of something that happened ``at``: the slot's window's, or
    the host's hour's when the host reads a digest. None when the host wants no such notice, or
    when the row was planned already by an earlier event of the same window."""
    host = slot.service.host
    if host.deleted_at is not None or not getattr(host, setting):
        return None
    if host.notify_digest:
        since, until = digest_hour(at, host.timezone)
        key = f"{DIGEST}:{host.id}:{int(until.timestamp())}"
        return _queue_once(DIGEST, key, host, since, until, slot_id=None)
    since = window_start(at)
    until = since + NOTICE_WINDOW
    return _queue_once(kind, f"{kind}:{slot.id}:{int(since.timestamp())}", host, since, until, slot_id=slot.id)


def window_start(at: datetime) -> datetime:
    """The start of the fixed ``NOTICE_WINDOW`` that ``at`` falls in."""
    step = int(NOTICE_WINDOW.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=timezone.utc)


def digest_hour(at: datetime, tz_name: str) -> tuple[datetime, datetime]:
    """The hour of the host's clock that ``at`` falls in, as UTC (start, end): a host in India
    (UTC+5:30) gets the digest at the full hour of India, not at half past."""
    local = clock.to_local(at, tz_name)
    start = clock.as_utc(local.replace(minute=0, second=0, microsecond=0))
    return start, start + DIGEST_PERIOD


def _queue_once(kind: str, key: str, host: User, since: datetime, until: datetime,
                slot_id: int | None) -> Delivery | None:
    if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)) is not None:
        return None  # an earlier event of this window planned it: that email will list this one too
    try:
        with db.session.begin_nested():
            return queue_email(kind, to_email=host.email, to_name=host.display_name, locale=host.locale,
                               host_id=host.id, slot_id=slot_id, due_at=until + NOTICE_SETTLE, dedupe_key=key,
                               payload={"since": since.isoformat(), "until": until.isoformat()})
    except IntegrityError:  # another booking of the same window planned it at the same moment (PostgreSQL)
        return None


# --- what a notice lists (at send time) ----------------------------------------------------------

@dataclass
class SlotNews:
    """What happened to one slot in a notice's period: its bookings and its guests' cancellations."""

    slot: Slot
    booked: list[Booking] = field(default_factory=list)
    cancelled: list[Booking] = field(default_factory=list)

    @property
    def service(self) -> Service:
        return self.slot.service


def _period(delivery: Delivery) -> tuple[datetime, datetime]:
    return (clock.as_utc(datetime.fromisoformat(delivery.payload["since"])),
            clock.as_utc(datetime.fromisoformat(delivery.payload["until"])))


def _booked_in(since: datetime, until: datetime):
    return and_(Booking.created_at >= since, Booking.created_at < until)


def _cancelled_by_guest_in(since: datetime, until: datetime):
    return and_(Booking.status == BookingStatus.CANCELLED, Booking.cancelled_by_host.is_(False),
                Booking.cancelled_at >= since, Booking.cancelled_at < until)


def _host_for(delivery: Delivery) -> User:
    host = db.session.get(User, delivery.host_id)
    if host is None or host.deleted_at is not None:
        raise SkipDelivery("the host closed the account")
    return host


def _slot_context(delivery: Delivery, host: User) -> dict:
    slot = db.session.get(Slot, delivery.slot_id)
    if slot is None or slot.service.host_id != host.id:
        raise SkipDelivery("slot gone")
    since, until = _period(delivery)
    return {"host": host, "slot": slot, "service": slot.service, "tz": host.timezone,
            "zone": _zone_note(host), "since": since, "until": until,
            "slot_url": external_url("services.slot_detail", slot_id=slot.id),
            "settings_url": _settings_url()}


def _zone_note(host: User) -> str:
    """The host's zone in words when it is not Japan time (the dates are the host's), else ""."""
    return "" if clock.is_japan_time(host.timezone) else clock.zone_label(host.timezone, host.locale)


def _settings_url() -> str:
    """Where the host turns notices on and off, or chooses the digest (the account settings)."""
    return external_url("account.settings")


@email_kind(BOOKING_NOTICE, subject=lambda ctx: _("新しいご予約がありました（%(title)s）", title=ctx["service"].title))
def _booking_notice_context(delivery: Delivery) -> dict:
    host = _host_for(delivery)
    if not host.notify_bookings:
        raise SkipDelivery("the host turned booking notices off")
    ctx = _slot_context(delivery, host)
    booked = db.session.scalars(select(Booking).where(
        Booking.slot_id == ctx["slot"].id, _booked_in(ctx["since"], ctx["until"])).order_by(Booking.id)).all()
    if not booked:
        raise SkipDelivery("no booking in the window")
    return {**ctx, "booked": booked}


@email_kind(CANCELLATION_NOTICE,
            subject=lambda ctx: _("ご予約がキャンセルされました（%(title)s）", title=ctx["service"].title))
def _cancellation_notice_context(delivery: Delivery) -> dict:
    host = _host_for(delivery)
    if not host.notify_cancellations:
        raise SkipDelivery("the host turned cancellation notices off")
    ctx = _slot_context(delivery, host)
    if not ctx["slot"].is_open:
        # Cancelling the whole date cancels its bookings without marking them the host's
        # (``services.slots.cancel_slot``): they would read as the guests' own cancellations.
        raise SkipDelivery("the host cancelled the date since")
    cancelled = db.session.scalars(select(Booking).where(
        Booking.slot_id == ctx["slot"].id, _cancelled_by_guest_in(ctx["since"], ctx["until"]))
        .order_by(Booking.cancelled_at, Booking.id)).all()
    if not cancelled:
        raise SkipDelivery("no guest cancellation in the window")
    return {**ctx, "cancelled": cancelled}


def digest_news(host: User, since: datetime, until: datetime, *, bookings: bool = True,
                cancellations: bool = True) -> list[SlotNews]:
    """What happened to the host's slots from ``since`` to ``until``, by service, then date; less
    what an immediate notice tells (or told) the host already: a host who switches to the digest
    within the hour is not told twice of what happened before the switch."""
    wanted = []
    if bookings:
        wanted.append(_booked_in(since, until))
    if cancellations:
        wanted.append(_cancelled_by_guest_in(since, until))
    if not wanted:
        return []
    rows = db.session.scalars(
        select(Booking).join(Booking.slot).join(Slot.service)
        .options(contains_eager(Booking.slot).contains_eager(Slot.service))
        .where(Service.host_id == host.id, or_(*wanted))
        .order_by(Service.title, Service.id, Slot.starts_at, Slot.id, Booking.id)).all()
    told = _told_at_once(host, since, until)
    news: dict[int, SlotNews] = {}
    for booking in rows:
        item = news.setdefault(booking.slot_id, SlotNews(booking.slot))
        created = clock.as_utc(booking.created_at)
        if bookings and since <= created < until and not told(BOOKING_NOTICE, booking.slot_id, created):
            item.booked.append(booking)
        cancelled = booking.cancelled_at and clock.as_utc(booking.cancelled_at)
        if (cancellations and cancelled and since <= cancelled < until and not booking.cancelled_by_host
                and booking.status == BookingStatus.CANCELLED and booking.slot.is_open  # see CANCELLATION_NOTICE
                and not told(CANCELLATION_NOTICE, booking.slot_id, cancelled)):
            item.cancelled.append(booking)
    for item in news.values():
        item.cancelled.sort(key=lambda b: (b.cancelled_at, b.id))
    return [item for item in news.values() if item.booked or item.cancelled]


def _told_at_once(host: User, since: datetime, until: datetime):
    """``told(kind, slot_id, moment)``: an immediate notice of the host covers that moment (sent, or
    still to be sent; not one that was dropped or failed). A handful of rows per hour at most."""
    rows = db.session.scalars(select(Delivery).where(
        Delivery.host_id == host.id, Delivery.kind.in_([BOOKING_NOTICE, CANCELLATION_NOTICE]),
        Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT]),
        Delivery.due_at > since, Delivery.due_at <= until + NOTICE_WINDOW + NOTICE_SETTLE)).all()
    windows = [(row.kind, row.slot_id, *_period(row)) for row in rows]

    def told(kind: str, slot_id: int, moment: datetime) -> bool:
        return any(k == kind and s == slot_id and start <= moment < end for k, s, start, end in windows)

    return told


@email_kind(DIGEST, subject=lambda ctx: _("ご予約とキャンセルのまとめ（%(when)s）", when=ctx["period_label"]))
def _digest_context(delivery: Delivery) -> dict:
    host = _host_for(delivery)
    if not (host.notify_bookings or host.notify_cancellations):
        raise SkipDelivery("the host turned notices off")
    since, until = _period(delivery)
    news = digest_news(host, since, until, bookings=host.notify_bookings, cancellations=host.notify_cancellations)
    if not news:
        raise SkipDelivery("nothing to tell in the hour")
    for item in news:
        item.slot_url = external_url("services.slot_detail", slot_id=item.slot.id)
    return {"host": host, "tz": host.timezone, "zone": _zone_note(host), "since": since, "until": until,
            "period_label": clock.format_range_local(since, until, host.timezone, host.locale),
            "news": news, "booked_total": sum(len(n.booked) for n in news),
            "cancelled_total": sum(len(n.cancelled) for n in news), "settings_url": _settings_url()}
