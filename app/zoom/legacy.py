"""The move from legacy platform sub-accounts to personal Zoom linking.

Hosts used to be linked to Zoom sub-accounts the platform provided (the legacy link); their
meetings are ``Meeting`` rows with ``legacy=True``. Staff announce a deadline (every
affected host is emailed once and sees a countdown banner); at the release, legacy links are
turned off, legacy-issued URLs stop working here, their pending automatic emails are cancelled,
and each host is told what happened and which upcoming bookings need a new URL.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import clock
from app.extensions import begin_write, db
from app.mail.outbox import cancel_pending, queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import (Booking, BookingStatus, Delivery, LegacyStatus, LegacyZoomLink, MeetingStatus,
                        MigrationNotice, Service, Slot, SlotStatus, User, Venue, ZoomConnection, Meeting)
from app.models import LinkStatus
from app.urls import external_url
from app.meetings.switch import URL_EMAIL_KINDS, affected_slots_by_service


def legacy_link_for(host: User) -> LegacyZoomLink | None:
    """The host's legacy link, if they ever had one."""
    return db.session.scalar(select(LegacyZoomLink).where(LegacyZoomLink.host_id == host.id))


def current_notice() -> MigrationNotice | None:
    """The announcement, if one was made."""
    return db.session.scalar(select(MigrationNotice).order_by(MigrationNotice.id.desc()))


def legacy_meetings(host_id: int) -> list[Meeting]:
    """Legacy-issued meetings of a host whose URLs are still handed out."""
    return db.session.scalars(select(Meeting).where(
        Meeting.host_id == host_id, Meeting.legacy.is_(True),
        Meeting.status == MeetingStatus.ISSUED)).all()


def legacy_meeting_count(host_id: int) -> int:
    """How many legacy-issued URLs of a host are still handed out (``legacy_meetings``, counted in SQL)."""
    return db.session.scalar(select(func.count()).select_from(Meeting).where(
        Meeting.host_id == host_id, Meeting.legacy.is_(True), Meeting.status == MeetingStatus.ISSUED))


def upcoming_bookings(host_id: int) -> list[Booking]:
    """Confirmed future bookings of the host's Zoom services (what the change affects)."""
    return db.session.scalars(select(Booking).join(Booking.slot).join(Slot.service).where(
        Service.host_id == host_id, Service.venue == Venue.ZOOM, Slot.status == SlotStatus.OPEN,
        Slot.starts_at > clock.now(), Booking.status == BookingStatus.CONFIRMED).order_by(Slot.starts_at)).all()


def _withdraw_legacy(host_id: int) -> tuple[int, int]:
    """Invalidate the host's legacy URLs and cancel their automatic emails; return (meetings, emails)."""
    meetings = legacy_meetings(host_id)
    emails = 0
    for meeting in meetings:
        meeting.mark_deleted("legacy link ended")
        for kind in URL_EMAIL_KINDS:
            emails += cancel_pending(slot_id=meeting.slot_id, kind=kind)
    return len(meetings), emails


def turn_off_legacy(host: User) -> tuple[int, int]:
    """The host turns the legacy link OFF now: URLs deleted, automatic sending stops. Commits."""
    begin_write()
    legacy = legacy_link_for(host)
    if legacy is None or not legacy.is_active:
        db.session.commit()
        return 0, 0
    legacy.status = LegacyStatus.OFF
    legacy.ended_at = clock.now()
    counts = _withdraw_legacy(host.id)
    db.session.commit()
    return counts


def _deadline_moment(day: date) -> datetime:
    return clock.local_to_utc(datetime.combine(day, time(0, 0)))


def announce(deadline: date) -> list[User]:
    """Record the deadline and email every affected host not yet told about it. Commits.

    Idempotent: a second run with the same deadline emails nobody.
    """
    begin_write()
    moment = _deadline_moment(deadline)
    notice = current_notice()
    if notice is None:
        notice = MigrationNotice(deadline=moment)
        db.session.add(notice)
    notice.deadline = moment
    emailed = []
    for legacy in db.session.scalars(select(LegacyZoomLink).where(LegacyZoomLink.status != LegacyStatus.RELEASED)):
        key = f"migration_notice:{legacy.host_id}:{deadline.isoformat()}"
        if db.session.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)):
            continue
        host = legacy.host
        queue_email("migration_notice", to_email=host.email, to_name=host.display_name, locale=host.locale,
                    host_id=host.id, dedupe_key=key)
        emailed.append(host)
    db.session.commit()
    return emailed


@dataclass
class Released:
    host: User
    meetings: int
    emails_cancelled: int


def release() -> list[Released]:
    """Turn every legacy link off, invalidate legacy URLs, and tell each host once. Commits."""
    begin_write()
    notice = current_notice()
    if notice is not None and notice.released_at is None:
        notice.released_at = clock.now()
    done = []
    for legacy in db.session.scalars(select(LegacyZoomLink).where(LegacyZoomLink.status != LegacyStatus.RELEASED)):
        meetings, emails = _withdraw_legacy(legacy.host_id)
        legacy.status = LegacyStatus.RELEASED
        legacy.ended_at = legacy.ended_at or clock.now()
        host = legacy.host
        queue_email("migration_released", to_email=host.email, to_name=host.display_name, locale=host.locale,
                    host_id=host.id, dedupe_key=f"migration_released:{host.id}")
        done.append(Released(host, meetings, emails))
    db.session.commit()
    return done


def banner_for(host: User) -> dict | None:
    """The countdown banner for a host still affected by the announced change."""
    legacy = host.legacy_zoom_link  # loaded with the request's user (``auth.accounts.load_user``)
    if legacy is None or legacy.status == LegacyStatus.RELEASED:
        return None  # most hosts: no need to look for the announcement
    notice = current_notice()
    if notice is None or notice.released_at:
        return None
    days = (clock.to_local(notice.deadline).date() - clock.to_local(clock.now()).date()).days
    return {"deadline": notice.deadline, "days_left": max(days, 0), "legacy_active": legacy.is_active}


@dataclass
class MigrationProgress:
    affected: int
    already_off: int
    relinked: int
    still_legacy: int
    bookings_at_risk: int
    notice: MigrationNotice | None


def progress() -> MigrationProgress:
    """For staff: where the hosts stand."""
    links = db.session.scalars(select(LegacyZoomLink)).all()
    personal = set(db.session.scalars(select(ZoomConnection.host_id).where(
        ZoomConnection.status == LinkStatus.ACTIVE)))
    still = [l for l in links if l.is_active]
    at_risk = sum(len(upcoming_bookings(l.host_id)) for l in links if l.host_id not in personal)
    return MigrationProgress(affected=len(links), already_off=sum(l.status == LegacyStatus.OFF for l in links),
                             relinked=sum(l.host_id in personal for l in links), still_legacy=len(still),
                             bookings_at_risk=at_risk, notice=current_notice())


def _host_context(delivery: Delivery) -> dict:
    host = db.session.get(User, delivery.host_id)
    if host is None:
        raise SkipDelivery("host deleted")
    notice = current_notice()
    bookings = upcoming_bookings(host.id)
    return {"host": host, "deadline": notice.deadline if notice else None, "bookings": bookings,
            "settings_url": external_url("zoom.settings"),
            "compose_urls": [(service, external_url("messages.compose", service_id=service.id, slot_ids=slot_ids))
                             for service, slot_ids in affected_slots_by_service(bookings)]}


@email_kind("migration_notice", subject=lambda ctx: _("【重要】Zoom連携がご自身のZoomアカウントでの連携に変わります"))
def _notice_context(delivery: Delivery) -> dict:
    return _host_context(delivery)


@email_kind("migration_released", subject=lambda ctx: _("【重要】旧Zoom連携を終了しました。再連携をお願いします"))
def _released_context(delivery: Delivery) -> dict:
    return _host_context(delivery)
