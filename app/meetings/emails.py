"""The guest's URL email (and its 「準備中」 stand-in), the ``.ics`` and the reminders, one for every video tool.

The URL email is rendered at send time: just before sending, the meeting is checked on its tool
and re-issued if it is gone. Guests get a stable link ``/j/<token>`` that redirects to the
slot's current join URL, so a re-issued URL never leaves a stale link in an inbox.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask_babel import gettext as _
from icalendar import Calendar, Event
from sqlalchemy import select

from app import clock
from app.extensions import begin_write, db
from app.mail.guest import guest_email_context
from app.mail.outbox import queue_email
from app.mail.render import WAITING_PREFIX, DeferDelivery, SkipDelivery, email_kind, per_batch
from app.meetings import guest_links
from app.meetings.alerts import alert_host
from app.meetings.issuing import MeetingNotReady, batch_link, batch_meeting, ready_meeting
from app.meetings import reminders
from app.meetings.timing import (LAST_LOOK_BEFORE_START, WAIT_FOR_MEETING, WAIT_FOR_MEETING_DEFAULT, reminder_minutes,
                                 url_lead)
from app.meetings.tools import plan_cut_minutes, tool_for, tool_named
from app.models import Delivery, DeliveryStatus, MeetingFailure, MeetingStatus, Slot


def ics_for(slot: Slot, join_link: str, description: str) -> bytes:
    """A calendar entry for one guest (no other attendee in it).

    The guests of one date get the same entry but for their own link's token, so it is built once
    per outbox batch with a stand-in token of the same length (the same line folding) and the
    token put in; should the stand-in not come out whole (folded across a line), it is built for
    the guest alone.
    """
    base, _, token = join_link.rpartition("/")
    stand_in = "Q" * len(token)
    shared = per_batch(("ics", slot.id, base, len(token), description),
                       lambda: _ics(slot, f"{base}/{stand_in}", description))
    if token and shared.count(stand_in.encode()) == 2:  # LOCATION and URL
        return shared.replace(stand_in.encode(), token.encode())
    return _ics(slot, join_link, description)


def _ics(slot: Slot, join_link: str, description: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//booking host dashboard//JA")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"slot-{slot.id}@booking.local")
    event.add("summary", slot.service.title)
    event.add("dtstart", slot.starts_at)
    event.add("dtend", slot.ends_at)
    event.add("dtstamp", clock.now())
    event.add("location", join_link)
    event.add("url", join_link)
    event.add("description", description)
    calendar.add_component(event)
    return calendar.to_ical()


def _url_subject(ctx: dict) -> str:
    return _("【参加URLのご案内】%(title)s", title=ctx["service"].title)


@email_kind("meeting_url", subject=_url_subject)
def _url_context(delivery: Delivery) -> dict:
    ctx = guest_email_context(delivery)
    booking, slot, service = ctx["booking"], ctx["slot"], ctx["service"]
    if not booking.is_confirmed or not slot.is_open:
        raise SkipDelivery("booking or slot cancelled")
    tool = tool_for(service)
    found = batch_link(tool, service.host_id) if tool is not None else None
    meeting = batch_meeting(slot.id)
    if found is None and meeting is not None and meeting.legacy and meeting.status == MeetingStatus.ISSUED:
        # Issued on a platform Zoom sub-account before personal linking; valid until the release.
        return _with_meeting(ctx, meeting, cut_minutes=None)
    if found is None:
        raise SkipDelivery("the service's video tool is not linked: nothing is sent automatically")
    if delivery.last_error.startswith(WAITING_PREFIX) and slot.starts_at <= clock.now():
        raise SkipDelivery("the lesson started before a meeting could be issued")  # the guest was told: until the start
    try:
        if not found.is_active:
            begin_write()
            alert_host(db.session.get(Slot, slot.id), MeetingFailure.LINK_BROKEN)
            db.session.commit()
            raise MeetingNotReady(MeetingFailure.LINK_BROKEN)
        # (Patience counts from when the email first fell due: each quiet wait moves ``due_at``.)
        meeting = ready_meeting(slot, due_at=first_due(delivery, slot))  # alerts the host when it cannot be issued
    except MeetingNotReady as why:
        _wait_for_meeting(delivery, slot, why)
    guest_links.ensure(booking)  # per-guest links: the last chance to register before the /j/ link goes out
    return _with_meeting(ctx, meeting, cut_minutes=plan_cut_minutes(service, found))


def _with_meeting(ctx: dict, meeting, *, cut_minutes: int | None) -> dict:
    from app.urls import external_url

    slot, service = ctx["slot"], ctx["service"]
    join_link = external_url("booking.join", token=ctx["booking"].join_token)
    ctx.update(meeting=meeting, tool_name=tool_named(meeting.provider).name, join_link=join_link,
               cut_minutes=cut_minutes if cut_minutes and service.duration_minutes > cut_minutes else None,
               attachments=[("invite.ics", ics_for(slot, join_link, service.host_notes), "text", "calendar")])
    return ctx


def _wait_for_meeting(delivery: Delivery, slot: Slot, why: MeetingNotReady):
    """The URL email cannot carry a URL yet: tell the guest once (「参加URLの準備中」, with their
    ``/j/`` page) and keep the email waiting until a meeting can be issued, up to the start. A
    check the tool did not answer only waits (``why.quiet``): nobody is told.

    :raises DeferDelivery: always, or ``SkipDelivery`` once the lesson has started.
    """
    now = clock.now()
    if slot.starts_at <= now:
        raise SkipDelivery("the lesson started before a meeting could be issued")
    if why.quiet:
        raise DeferDelivery(why.retry_at, why.failure.value, quiet=True)
    last_look = slot.starts_at - LAST_LOOK_BEFORE_START
    until = why.retry_at or now + WAIT_FOR_MEETING.get(why.failure.value, WAIT_FOR_MEETING_DEFAULT)
    until = min(until, last_look) if last_look > now else min(now + timedelta(minutes=1), slot.starts_at)
    key = f"meeting_url_waiting:{delivery.booking_id}:{delivery.id}"
    begin_write()
    if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)) is None:
        queue_email("meeting_url_waiting", to_email=delivery.to_email, to_name=delivery.to_name,
                    host_id=delivery.host_id, booking_id=delivery.booking_id, slot_id=slot.id, dedupe_key=key)
    db.session.commit()
    raise DeferDelivery(until, why.failure.value)


@email_kind("meeting_url_waiting", subject=lambda ctx: _("【参加URLの準備中】%(title)s", title=ctx["service"].title))
def _url_waiting_context(delivery: Delivery) -> dict:
    from app.urls import external_url

    ctx = guest_email_context(delivery)
    booking, slot = ctx["booking"], ctx["slot"]
    if not booking.is_confirmed or not slot.is_open:
        raise SkipDelivery("booking or slot cancelled")
    if _url_sent_since(booking.id, delivery.created_at):
        raise SkipDelivery("the URL email went out meanwhile")
    ctx["join_link"] = external_url("booking.join", token=booking.join_token)
    return ctx


def _url_sent_since(booking_id: int, moment: datetime) -> bool:
    return db.session.scalar(select(Delivery.id).where(
        Delivery.booking_id == booking_id, Delivery.kind == "meeting_url", Delivery.status == DeliveryStatus.SENT,
        Delivery.sent_at >= moment).limit(1)) is not None


def first_due(delivery: Delivery, slot: Slot) -> datetime:
    """When a URL-related email first fell due (each wait moves ``due_at``)."""
    return max(delivery.created_at, slot.starts_at - url_lead(slot.service))


def _starts_in(slot: Slot) -> dict:
    """「あと10分」/「あと約1時間」, from the real time left when the reminder is rendered."""
    left = max(1, math.ceil((slot.starts_at - clock.now()) / timedelta(minutes=1)))
    return {"left_hours": round(left / 60)} if left >= 60 else {"left_minutes": left}


def _reminder_subject(ctx: dict) -> str:
    if "left_hours" in ctx:
        return _("【まもなく開始】約%(n)d時間後に始まります：%(title)s", n=ctx["left_hours"], title=ctx["service"].title)
    return _("【まもなく開始】%(n)d分後に始まります：%(title)s", n=ctx["left_minutes"], title=ctx["service"].title)


@email_kind(reminders.KIND, subject=_reminder_subject)
def _reminder_context(delivery: Delivery) -> dict:
    """「まもなく開始」: the lesson as it is now, and the guest's lesson page (which resolves the URL)."""
    from app.urls import external_url

    ctx = guest_email_context(delivery)
    booking, slot, service = ctx["booking"], ctx["slot"], ctx["service"]
    if not booking.is_confirmed or not slot.is_open or booking.slot_id != delivery.slot_id:
        raise SkipDelivery("booking or lesson cancelled, or the guest moved to another date")
    if slot.starts_at <= clock.now():
        raise SkipDelivery("the lesson has started: a reminder is never sent after the start")
    if delivery.payload.get("starts_at") != clock.as_utc(slot.starts_at).isoformat():
        raise SkipDelivery("the lesson moved: the reminder for its new time is planned separately")
    if delivery.payload.get("minutes") not in reminder_minutes(service):
        raise SkipDelivery("the host removed this reminder from the service's schedule")
    tool = tool_for(service)
    found = batch_link(tool, service.host_id) if tool is not None else None
    cut = plan_cut_minutes(service, found) if found is not None else None
    ctx.update(_starts_in(slot), join_link=external_url("booking.join", token=booking.join_token),
               tool_name=tool.name if tool is not None else None,
               opens_minutes=service.join_opens_minutes,
               cut_minutes=cut if cut and service.duration_minutes > cut else None)
    return ctx
