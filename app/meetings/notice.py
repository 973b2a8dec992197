"""The host's emails about a slot's meeting: the notice with each guest's URL email state, the
trouble alert and the failed delete, one for every video tool."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.mail.render import WAITING_PREFIX, DeferDelivery, SkipDelivery, email_kind
from app.meetings.emails import first_due
from app.meetings.issuing import batch_link, batch_meeting, meeting_for
from app.meetings.timing import NOTICE_WAITS_FOR_GUESTS
from app.meetings.tools import tool_for, tool_named
from app.models import Delivery, DeliveryStatus, MeetingFailure, MeetingStatus, Slot
from app.urls import external_url


@dataclass(frozen=True)
class GuestUrlState:
    """What the host notice says of one guest's URL email."""

    guest_name: str
    guest_email: str
    #: ``sent``, ``waiting`` (no meeting yet: sent on its own once there is one), ``sending``,
    #: ``failed`` or ``none`` (not covered by the link: booked before it).
    state: str
    sent_at: datetime | None = None
    #: Why it waits (``waiting``).
    failure: MeetingFailure | None = None
    #: When it is looked at again (``waiting``).
    next_try: datetime | None = None


def guest_url_states(slot: Slot) -> list[GuestUrlState]:
    """Each confirmed guest of the slot with the state of their latest URL email."""
    bookings = slot.confirmed_bookings
    latest: dict[int, Delivery] = {}
    for delivery in db.session.scalars(select(Delivery).where(
            Delivery.slot_id == slot.id, Delivery.kind == "meeting_url",
            Delivery.booking_id.in_([b.id for b in bookings])).order_by(Delivery.id)):
        latest[delivery.booking_id] = delivery
    states = []
    for booking in bookings:
        delivery = latest.get(booking.id)
        who = (booking.guest_name, booking.guest_email)
        state = GuestUrlState(*who, "none")
        if delivery is not None and delivery.status == DeliveryStatus.SENT:
            state = GuestUrlState(*who, "sent", sent_at=delivery.sent_at)
        elif delivery is not None and delivery.status == DeliveryStatus.FAILED:
            state = GuestUrlState(*who, "failed")
        elif delivery is not None and delivery.last_error.startswith(WAITING_PREFIX):
            failure = MeetingFailure(delivery.last_error.removeprefix(WAITING_PREFIX))
            state = GuestUrlState(*who, "waiting", failure=failure, next_try=delivery.due_at)
        elif delivery is not None and delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            state = GuestUrlState(*who, "sending")
        states.append(state)
    return states


def _notice_subject(ctx: dict) -> str:
    if ctx["all_sent"]:
        return _("予約者に%(tool)sのURLをお送りしました（%(title)s）", tool=ctx["tool_name"], title=ctx["service"].title)
    return _("【要確認】%(tool)sのURLをまだお送りできていない予約者がいます（%(title)s）", tool=ctx["tool_name"],
             title=ctx["service"].title)


def _slot_context(slot: Slot) -> dict:
    host = slot.service.host
    return {"slot": slot, "service": slot.service, "host": host, "tz": host.timezone}


@email_kind("meeting_host_notice", subject=_notice_subject)
def _host_notice_context(delivery: Delivery) -> dict:
    slot = db.session.get(Slot, delivery.slot_id)
    if slot is None or not slot.is_open or not slot.confirmed_bookings:
        raise SkipDelivery("slot cancelled or empty")
    tool = tool_for(slot.service)
    if tool is None or batch_link(tool, slot.service.host_id) is None:
        raise SkipDelivery("the service's video tool is OFF")
    if slot.service.host.deleted_at is not None:
        raise SkipDelivery("the host closed the account")
    states = [s for s in guest_url_states(slot) if s.state != "none"]
    now = clock.now()
    # Due with the guests' emails: tell the host what happened to them, not what may.
    if any(s.state == "sending" for s in states) and now < first_due(delivery, slot) + NOTICE_WAITS_FOR_GUESTS:
        raise DeferDelivery(now + timedelta(minutes=1), "guests_sending")
    meeting = batch_meeting(slot.id)
    return {**_slot_context(slot), "tool_name": tool.name, "guests": states,
            "all_sent": all(s.state == "sent" for s in states),
            "has_meeting": meeting is not None and meeting.status == MeetingStatus.ISSUED,
            "start_url": external_url("services.start_meeting", slot_id=slot.id),
            "slot_url": external_url("services.slot_detail", slot_id=slot.id)}


def _tool_name_of(slot: Slot) -> str:
    meeting = meeting_for(slot.id)
    tool = tool_named(meeting.provider) if meeting is not None else tool_for(slot.service)
    return tool.name if tool is not None else ""


@email_kind("meeting_trouble", subject=lambda ctx: _("【要対応】%(tool)sのURLを用意できませんでした（%(title)s）",
                                                     tool=ctx["tool_name"], title=ctx["service"].title))
def _trouble_context(delivery: Delivery) -> dict:
    slot = db.session.get(Slot, delivery.slot_id)
    failure = delivery.payload.get("failure")
    tool = tool_for(slot.service)
    # Rows written before failures were codes carry the sentence itself.
    return {**_slot_context(slot), "tool_name": _tool_name_of(slot),
            "failure": MeetingFailure(failure) if failure else None, "reason": delivery.payload.get("reason", ""),
            "settings_url": external_url(tool.settings_endpoint if tool else "zoom.settings"),
            "slot_url": external_url("services.detail", service_id=slot.service_id)}


@email_kind("meeting_delete_failed", subject=lambda ctx: _("【要対応】%(tool)s上のミーティングを削除できませんでした（%(title)s）",
                                                           tool=ctx["tool_name"], title=ctx["service"].title))
def _delete_failed_context(delivery: Delivery) -> dict:
    meeting = meeting_for(delivery.slot_id)
    if meeting is None or meeting.status != MeetingStatus.DELETE_FAILED:
        raise SkipDelivery("deleted (or in use again) meanwhile")
    tool_name = tool_named(meeting.provider).name
    return {**_slot_context(meeting.slot), "tool_name": tool_name, "meeting": meeting,
            "reason": MeetingFailure(delivery.payload["failure"]).delete_text(tool_name),
            "slot_url": external_url("services.slot_detail", slot_id=meeting.slot_id)}
