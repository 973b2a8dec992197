"""Closing a host's account (「アカウントを削除」): what it would do (``impact``), and doing it (``close``).

Closing keeps the rows others depend on and erases what is the host's:

- the future bookings are cancelled as the host's removal (each guest gets 「ご予約の取り消し」, saying
  the host closed the account), their open future dates are closed;
- each linked video tool is turned OFF as the host would (its meetings deleted on the tool, then its
  grant revoked and forgotten), and a legacy link ends;
- the ``users`` row stays (bookings, services and the outbox point at it) but loses everything that
  is the host's: login address (a placeholder that can receive nothing), name, bio, photo, contact
  address, password, second factor, notices; every session ends; ``deleted_at`` is set, so login
  answers as for an unknown address and the public pages 404 (``app.booking.routes``);
- the services lose the host's own texts (description, notes, venue, policy, URL), scheduled
  messages are cancelled and every message's text erased;
- delivery rows stay as records of what was sent, but those to the host lose the host's address
  and name, and unsent ones are cancelled.

The login address is free again: the person may sign up anew with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from app import clock
from app.auth import accounts, throttle
from app.booking.booking import cancel_booking
from app.extensions import begin_write, db
from app.meetings import tools, withdraw
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, Message, Service, Slot, SlotStatus,
                        User)
from app.models.message import MessageStatus
from app.zoom import legacy

#: The name a closed account shows where a name is unavoidable (old guest emails, staff pages).
CLOSED_NAME = "（退会済み）"
#: What the host's guests read in 「ご予約の取り消し」 (no personal data of the host).
GUEST_MESSAGE = "ホストがアカウントを削除したため、このご予約は取り消しとなりました。ご迷惑をおかけして申し訳ありません。"


def closed_address(user_id: int) -> str:
    """The login address of a closed account: unique, and in ``.invalid`` (RFC 2606), so nothing is delivered."""
    return f"closed-{user_id}@deleted.invalid"


@dataclass
class SlotImpact:
    """One future date with bookings, as the confirm page lists it."""

    slot: Slot
    guests: int


@dataclass
class Impact:
    """What closing would do, for the confirm page."""

    slots: list[SlotImpact]
    #: Guests emailed 「ご予約の取り消し」 (one per confirmed future booking).
    guests: int
    #: ``(tool name, meetings it would delete)`` of each linked tool; the legacy link is named 「Zoom（旧連携）」.
    tools: list[tuple[str, int]]
    services: int


@dataclass
class Closed:
    """What closing did, for the done page."""

    bookings_cancelled: int = 0
    meetings_deleted: int = 0
    tools_off: list[str] = field(default_factory=list)
    #: Meetings a tool did not delete now: retried on their own (the grant is kept until then).
    meetings_left: int = 0


def _future_bookings(host_id: int) -> list[Booking]:
    return db.session.scalars(
        select(Booking).join(Booking.slot).join(Slot.service)
        .where(Service.host_id == host_id, Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now(),
               Booking.status == BookingStatus.CONFIRMED)
        .order_by(Slot.starts_at, Booking.id)).all()


def _linked_tools(host: User) -> list:
    return [tool for tool in tools.all_tools() if tool.link_for(host.id) is not None]


def impact(host: User) -> Impact:
    """What ``close`` would do to ``host``'s account, read only."""
    from app.meetings.switch import live_meetings

    bookings = _future_bookings(host.id)
    by_slot: dict[int, SlotImpact] = {}
    for booking in bookings:
        by_slot.setdefault(booking.slot_id, SlotImpact(booking.slot, 0)).guests += 1
    linked = [(tool.name, len(live_meetings(host.id, tool))) for tool in _linked_tools(host)]
    link = legacy.legacy_link_for(host)
    if link is not None and link.is_active:
        linked.append((_("Zoom（旧連携）"), legacy.legacy_meeting_count(host.id)))
    services = db.session.scalar(select(func.count()).select_from(Service).where(Service.host_id == host.id))
    return Impact(slots=list(by_slot.values()), guests=len(bookings), tools=linked, services=services)


def check_password(host: User, password: str, remote_addr: str | None) -> None:
    """The password re-entered before closing. :raises WrongPassword: (a failed login), ``LoginThrottled``."""
    throttle.check(host.email, remote_addr)
    if not host.check_password(password):
        throttle.record_failure(host.email, remote_addr)
        raise accounts.WrongPassword()


def close(host: User) -> Closed:
    """Close ``host``'s account (see the module); commits, in steps.

    First the account is marked closed (no new booking, no login); then the tools go OFF (calls to
    the tools, each committing); then, in one transaction, bookings are cancelled and the data erased.
    """
    host_id = host.id
    begin_write()
    host = db.session.get(User, host_id)
    host.deleted_at = clock.now()
    host.end_sessions()
    db.session.commit()

    done = Closed()
    for tool in _linked_tools(host):
        result = withdraw.turn_off(host, tool)
        done.tools_off.append(tool.name)
        done.meetings_deleted += result.deleted
        done.meetings_left += len(result.in_progress) + len(result.not_deleted)
    link = legacy.legacy_link_for(host)
    if link is not None and link.is_active:
        done.meetings_deleted += legacy.turn_off_legacy(host)[0]
        done.tools_off.append(_("Zoom（旧連携）"))

    begin_write()
    host = db.session.get(User, host_id)
    for booking in _future_bookings(host_id):
        if cancel_booking(booking, by_host=True, message=GUEST_MESSAGE) is not None:
            done.bookings_cancelled += 1
    db.session.execute(
        update(Slot).where(Slot.service_id.in_(select(Service.id).where(Service.host_id == host_id)),
                           Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now())
        .values(status=SlotStatus.CANCELLED).execution_options(synchronize_session=False))
    _erase(host)
    db.session.commit()
    return done


def _erase(host: User) -> None:
    """Everything personal of the host, gone (under the write lock, before the commit)."""
    addresses = {host.email, host.contact_email} - {""}
    _anonymise_deliveries(host, addresses)
    db.session.execute(
        update(Service).where(Service.host_id == host.id)
        .values(description="", host_notes="", venue_address="", cancellation_policy="", meeting_url="")
        .execution_options(synchronize_session=False))
    db.session.execute(
        update(Message).where(Message.host_id == host.id,
                              Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.HELD]))
        .values(status=MessageStatus.CANCELLED).execution_options(synchronize_session=False))
    db.session.execute(
        update(Message).where(Message.host_id == host.id, Message.status == MessageStatus.CANCELLED)
        .values(body="").execution_options(synchronize_session=False))
    host.email = closed_address(host.id)
    host.display_name = CLOSED_NAME
    host.bio = ""
    host.photo = None
    host.photo_digest = None
    host.contact_email = ""
    host.show_contact_publicly = False
    host.notify_bookings = host.notify_cancellations = host.notify_digest = False
    host.password_hash = "closed"  # not a hash: no password matches it
    host.totp_secret = None
    host.end_sessions()


def _anonymise_deliveries(host: User, addresses: set[str]) -> None:
    """Rows to the host keep their kind and times, lose the address and name; unsent ones are cancelled.

    Rows to the host are those to one of its addresses, and those of the address change (to an
    address the host typed, whoever it belongs to).
    """
    closed = closed_address(host.id)
    change_rows = [row.id for row in db.session.scalars(
        select(Delivery).where(Delivery.kind.in_(accounts.EMAIL_CHANGE_KINDS))) if row.payload.get("user_id") == host.id]
    to_host = or_(Delivery.to_email.in_(addresses), Delivery.id.in_(change_rows))
    db.session.execute(
        update(Delivery).where(to_host, Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))
        .values(status=DeliveryStatus.CANCELLED, last_error="account closed")
        .execution_options(synchronize_session=False))
    db.session.execute(
        update(Delivery).where(to_host).values(to_email=closed, to_name="")
        .execution_options(synchronize_session=False))
    if change_rows:  # their payload names the address typed
        db.session.execute(
            update(Delivery).where(Delivery.id.in_(change_rows)).values(payload={"user_id": host.id})
            .execution_options(synchronize_session=False))
