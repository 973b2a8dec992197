"""Bulk messages: audience, safe placeholders, fan-out into the outbox, progress.

Placeholders are ``{name}`` from a fixed list, replaced by plain string substitution per
recipient at send time. The host's text is never compiled as a template, so ``{{ config }}``
arrives literally. Every guest gets their own email (one outbox row each, never Cc/Bcc).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, insert, select, update

from app import clock
from app.extensions import begin_write, db
from app.mail.outbox import queue_email
from app.mail.render import SkipDelivery, email_kind
from app.models import (Booking, BookingStatus, Delivery, DeliveryStatus, MeetingStatus, Message, MessageStatus,
                        Service, Slot, SlotStatus, User, Venue)
from app.queue import enqueue_after_commit
from app.templating import has_url
from app.urls import external_url
from app.meetings import issuing, timing, tools

#: The only placeholders there are, with the short label of their insert button (the composer,
#: status pages) and what they become.
PLACEHOLDERS = {
    "guest_name": _l("お名前"),
    "service_title": _l("サービス名"),
    "slot_datetime": _l("開催日時"),
    "zoom_link": _l("参加URL"),
    "host_name": _l("ホスト名"),
}
PLACEHOLDER_HINTS = {
    "guest_name": _l("予約者のお名前（「様」は付きません）"),
    "service_title": _l("サービスの名前"),
    "slot_datetime": _l("その方の開催日時（タイムゾーン付き）"),
    "zoom_link": _l("参加URL（まだない方には、いつ届くかの案内文）"),
    "host_name": _l("あなたの表示名"),
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
#: Anything a host may have meant as a placeholder: a word (any script: ``{名前}``) in braces,
#: half- or full-width (a Japanese IME types ｛｝). Template syntax such as ``{{ config }}`` or
#: ``{0.__class__}`` is not a word in braces and arrives as typed.
_PLACEHOLDER_LIKE = re.compile(r"[{\uff5b](\w+)[}\uff5d]")
#: Words hosts put in braces for each placeholder (besides its name and its label).
_ALIASES = {
    "guest_name": ("お名前", "名前", "おなまえ", "なまえ", "氏名", "予約者名", "お客様名", "name"),
    "service_title": ("サービス名", "サービス", "講座名", "レッスン名", "イベント名", "タイトル", "title", "service"),
    "slot_datetime": ("開催日時", "日時", "日程", "日付", "開催日", "時間", "date", "datetime"),
    "zoom_link": ("参加url", "url", "参加リンク", "リンク", "zoom", "zoomurl", "zoomのurl", "link", "zoom_url"),
    "host_name": ("ホスト名", "ホスト", "講師名", "講師", "先生", "host"),
}

#: Messages the composer can start from (``/messages/new?template=<key>``): subject and body, in
#: the host's language, for the host to read and edit before sending.
PREFILLS = {
    # Offered on the slot's page after the lesson, to the guests marked 欠席 (the host reads it first).
    "absent": (
        _l("「{service_title}」のご参加について"),
        _l("{guest_name} 様\n\n"
           "「{service_title}」（{slot_datetime}）にお申し込みいただき、ありがとうございました。\n\n"
           "当日はお姿をお見かけできなかったため、ご連絡いたしました。"
           "ご都合が合わなかったのでしたら、どうぞお気になさらないでください。\n"
           "接続がうまくいかなかったなど、お困りのことがございましたら、このメールにご返信ください。\n\n"
           "またお会いできるのを楽しみにしております。\n\n"
           "{host_name}"),
    ),
    # Offered after the Zoom link is turned OFF, to the guests who already hold a join URL.
    "url_changed": (
        _l("参加URL変更のお知らせ"),
        _l("{guest_name} 様\n\n"
           "「{service_title}」（{slot_datetime}）にお申し込みいただき、ありがとうございます。\n\n"
           "先日メールでお送りしたZoomの参加URLは、使えなくなりました。"
           "お手数ですが、そのURLからは参加なさらないでください。\n\n"
           "新しい参加方法は、開催までにあらためてこのメールアドレスにお知らせします。\n\n"
           "ご不便をおかけして申し訳ございません。当日お会いできるのを楽しみにしております。\n\n"
           "{host_name}"),
    ),
}


class MessageError(Exception):
    """A message cannot be sent as composed; the text is for the host."""


def unknown_placeholders(*texts: str) -> list[str]:
    """Words in braces in the texts that are not a placeholder, as typed: ``["{guest_nam}", "{名前}"]``.

    ``fill`` would leave them as they are, so the guest would read 「{名前} 様」: they are refused.
    """
    found = {m.group(0) for text in texts for m in _PLACEHOLDER_LIKE.finditer(text or "")}
    return sorted(token for token in found if _PLACEHOLDER.fullmatch(token) is None
                  or token[1:-1] not in PLACEHOLDERS)


def suggestion(token: str) -> str | None:
    """The placeholder a host probably meant by ``token`` (``{名前}`` → ``guest_name``), or None."""
    word = token[1:-1].casefold()
    for name, label in PLACEHOLDERS.items():
        if word in (name, str(label).casefold(), *_ALIASES[name]):
            return name
    close = difflib.get_close_matches(word, list(PLACEHOLDERS), n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_placeholders_error(*texts: str) -> str | None:
    """Why the texts cannot be sent as they are (their unknown placeholders), for the host; None if none."""
    unknown = unknown_placeholders(*texts)
    if not unknown:
        return None
    named = []
    for token in unknown:
        meant = suggestion(token)
        named.append(token if meant is None else _("%(typed)s（正しくは %(known)s）", typed=token,
                                                     known="{%s}" % meant))
    return _("使えない差し込み項目があります: %(names)s。差し込み項目は、本文の上のボタンで入れてください。",
             names="、".join(named))


def fill(text: str, values: dict[str, str]) -> str:
    """Replace known ``{placeholders}``; everything else stays as typed."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def placeholder_values(booking: Booking) -> dict[str, str]:
    """The values for one recipient, from current data (a moved slot shows its new time)."""
    slot, service = booking.slot, booking.slot.service
    url, instead = join_link(booking)
    return {
        "guest_name": booking.guest_name,
        "service_title": service.title,
        # 「ロサンゼルス時間 …（日本時間 …）」: guests read the zone in words, never a bare time.
        "slot_datetime": clock.format_for_guests(slot.starts_at, service.host.timezone),
        # A guest without a URL yet reads when and how it comes, never an empty line.
        "zoom_link": url or instead,
        "host_name": service.host.display_name,
    }


def join_link(booking: Booking) -> tuple[str | None, str]:
    """The guest's join link (``/j/<token>``) once the slot's meeting is issued, else None and the
    sentence ``{zoom_link}`` becomes instead, in the current locale (the email's when sending).

    The meeting and the host's Zoom link are the same for every guest of a slot: read once per
    outbox batch (``per_batch``), not once per email.
    """
    slot, service = booking.slot, booking.slot.service
    if service.venue == Venue.FIXED_URL and service.meeting_url:
        return external_url("booking.join", token=booking.join_token), ""
    meeting = issuing.batch_meeting(slot.id)
    if meeting is not None and meeting.status == MeetingStatus.ISSUED:
        return external_url("booking.join", token=booking.join_token), ""
    tool = tools.tool_for(service)
    connection = None
    if tool is not None:
        connection = issuing.batch_link(tool, service.host_id)
    return None, _no_url_yet(booking, connection)


def _no_url_yet(booking: Booking, connection) -> str:
    """What a guest without a join URL reads in place of ``{zoom_link}``."""
    slot, service = booking.slot, booking.slot.service
    if service.venue == Venue.IN_PERSON:
        return _("対面での開催のため、参加URLはありません。")
    if connection is not None and booking.created_at >= connection.applies_from:
        # Issued and emailed automatically (``meetings.planning.plan_url_delivery``).
        if slot.starts_at - timing.url_lead(service) > clock.now():
            return _("参加URLは、開催の%(hours)d時間前までにメールでお送りします。", hours=service.url_lead_hours)
        return _("参加URLは、準備ができ次第メールでお送りします。")
    if service.venue == Venue.MANUAL_URL and has_url(service.host_notes):
        return _("参加URLは、お申し込み完了メールでご案内しています。")
    return _("参加URLは、あらためてご案内します。")


@dataclass
class NoUrlGroup:
    """Recipients who read the same sentence instead of a join URL."""

    instead: str
    bookings: list[Booking]


def without_join_url(recipients: list[Booking]) -> list[NoUrlGroup]:
    """The recipients without a join URL yet, grouped by what they read instead (largest group first).

    Looks up each slot's meeting and the host's link once (a composer preview is not a batch).
    """
    memo: dict = {}

    def cached(key, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    groups: dict[str, list[Booking]] = {}
    for booking in recipients:
        slot, service = booking.slot, booking.slot.service
        if service.venue == Venue.FIXED_URL and service.meeting_url:
            continue
        meeting = cached(("meeting", slot.id), lambda: issuing.meeting_for(slot.id))
        if meeting is not None and meeting.status == MeetingStatus.ISSUED:
            continue
        tool = tools.tool_for(service)
        connection = (cached(("video_link", service.host_id, tool.key), lambda: tool.link_for(service.host_id))
                      if tool is not None else None)
        groups.setdefault(_no_url_yet(booking, connection), []).append(booking)
    return sorted((NoUrlGroup(instead, bookings) for instead, bookings in groups.items()),
                  key=lambda group: -len(group.bookings))


def uses_placeholder(name: str, *texts: str) -> bool:
    """True when one of the texts has the placeholder ``{name}``."""
    return any(name in _PLACEHOLDER.findall(text or "") for text in texts)


def upcoming_slots(service: Service) -> list[Slot]:
    """The service's open slots that have not started."""
    return db.session.scalars(select(Slot).where(
        Slot.service_id == service.id, Slot.status == SlotStatus.OPEN, Slot.starts_at > clock.now())
        .order_by(Slot.starts_at)).all()


def prefill(key: str | None) -> tuple[str, str] | None:
    """The subject and body of the prefilled message ``key`` (``PREFILLS``), or None if there is none."""
    texts = PREFILLS.get(key or "")
    return None if texts is None else (str(texts[0]), str(texts[1]))


def own_guest_ids(service: Service, slot_ids: list[int], booking_ids: list[int]) -> list[int]:
    """Those of ``booking_ids`` that are confirmed guests of the given slots of ``service`` (from a link)."""
    if not slot_ids or not booking_ids:
        return []
    return list(db.session.scalars(select(Booking.id).join(Booking.slot).where(
        Booking.id.in_(booking_ids), Booking.slot_id.in_(slot_ids), Booking.status == BookingStatus.CONFIRMED,
        Slot.service_id == service.id).order_by(Booking.id)))


def upcoming_slot_ids(service: Service, slot_ids: list[int]) -> list[int]:
    """Those of ``slot_ids`` that are upcoming open slots of ``service`` (ids from a link are never trusted)."""
    if not slot_ids:
        return []
    return list(db.session.scalars(select(Slot.id).where(
        Slot.id.in_(slot_ids), Slot.service_id == service.id, Slot.status == SlotStatus.OPEN,
        Slot.starts_at > clock.now()).order_by(Slot.starts_at)))


def audience(service: Service, slot_ids: list[int], all_upcoming: bool,
             booking_ids: list[int] | None = None) -> list[Booking]:
    """Confirmed bookings of the chosen slots of this service (only the host's own guests).

    :param booking_ids: only these of them (「欠席の方にメッセージを送る」: some guests of one lesson).
    """
    if all_upcoming:
        chosen = [s.id for s in upcoming_slots(service)]
    else:
        chosen = list(db.session.scalars(select(Slot.id).where(Slot.service_id == service.id,
                                                               Slot.id.in_(slot_ids or [-1]))))
    if not chosen:
        return []
    statement = select(Booking).join(Booking.slot).where(
        Booking.slot_id.in_(chosen), Booking.status == BookingStatus.CONFIRMED, Slot.status == SlotStatus.OPEN)
    if booking_ids:
        statement = statement.where(Booking.id.in_(booking_ids))
    return db.session.scalars(statement.order_by(Slot.starts_at, Booking.id)).all()


def _utc_day(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def written_on(host: User, moment: datetime) -> int:
    """Bulk emails written for this host on the UTC day of ``moment``."""
    start, end = _utc_day(moment)
    return db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.host_id == host.id, Delivery.bulk_message_id.is_not(None), Delivery.created_at >= start,
        Delivery.created_at < end))


def reserved_on(host: User, moment: datetime, *, besides: Message | None = None) -> int:
    """The host's bulk emails counted against the UTC day of ``moment``: written that day, plus
    those reserved by messages scheduled (or held) for it and not yet sent.

    A scheduled message reserves its recipients when it is composed, so messages scheduled for
    later cannot together exceed the day's limit (each alone would pass).
    """
    start, end = _utc_day(moment)
    pending = select(func.coalesce(func.sum(Message.total), 0)).where(
        Message.host_id == host.id, Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.HELD]),
        Message.scheduled_at >= start, Message.scheduled_at < end)
    if besides is not None and besides.id is not None:
        pending = pending.where(Message.id != besides.id)
    return written_on(host, moment) + db.session.scalar(pending)


class OverDailyLimit(MessageError):
    """The day's bulk emails would exceed ``BULK_DAILY_LIMIT``."""


def _check_limit(host: User, count: int, day: datetime, *, besides: Message | None = None) -> None:
    limit = current_app.config["BULK_DAILY_LIMIT"]
    used = reserved_on(host, day, besides=besides)
    if used + count > limit:
        raise OverDailyLimit(_("1日に送れるメッセージは%(limit)d通までです（この日の残り%(left)d通）。",
                               limit=limit, left=max(limit - used, 0)))


def check(host: User, service: Service, slot_ids: list[int], all_upcoming: bool, subject: str, body: str,
          scheduled_at: datetime | None, *, editing: Message | None = None,
          booking_ids: list[int] | None = None) -> list[Booking]:
    """Validate a composed message; return its audience. Raises ``MessageError`` with the reason.

    :param editing: the message being changed (its own reservation does not count against it).
    :param booking_ids: only these guests of the chosen slots (sent at once: a message stores its
        slots, not its guests, so a scheduled one could not keep to them).
    """
    if service.host_id != host.id:
        raise MessageError(_("このサービスにはメッセージを送れません。"))
    unknown = unknown_placeholders_error(subject, body)
    if unknown:
        raise MessageError(unknown)
    if scheduled_at is not None and scheduled_at <= clock.now():
        raise MessageError(_("予約送信の日時は、これから先の日時を指定してください。"))
    if booking_ids and (scheduled_at is not None or all_upcoming):
        raise MessageError(_("選んだ方へのメッセージは、今すぐ送信する場合だけ送れます。"))
    recipients = audience(service, slot_ids, all_upcoming, booking_ids)
    if not recipients:
        raise MessageError(_("送信先の予約者がいません。開催日時を選び直してください。"))
    _check_limit(host, len(recipients), scheduled_at or clock.now(), besides=editing)
    return recipients


def compose(host: User, service: Service, *, slot_ids: list[int], all_upcoming: bool, subject: str, body: str,
            scheduled_at: datetime | None, booking_ids: list[int] | None = None) -> Message:
    """Save a checked message; start it now or leave it scheduled. Commits.

    :param booking_ids: only these guests of the slots: written to the outbox in the same
        transaction as the message, since a fan-out later would read the slots' whole audience.
    """
    recipients = check(host, service, slot_ids, all_upcoming, subject, body, scheduled_at, booking_ids=booking_ids)
    message = Message(host_id=host.id, service_id=service.id, slot_ids=[] if all_upcoming else sorted(slot_ids),
                      all_upcoming=all_upcoming, subject=subject, body=body, status=MessageStatus.SCHEDULED,
                      scheduled_at=scheduled_at or clock.now(), total=len(recipients))  # its reservation
    db.session.add(message)
    if booking_ids:
        db.session.flush()
        _write_deliveries(message, recipients)
        db.session.commit()
        return message
    db.session.commit()
    if scheduled_at is None:
        fan_out(message.id)
    return message


def edit(message: Message, host: User, *, slot_ids: list[int], all_upcoming: bool, subject: str, body: str,
         scheduled_at: datetime | None) -> Message:
    """Change a message that has not started yet (``scheduled_at=None``: send it now). Commits."""
    if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD):
        raise MessageError(_("送信が始まったメッセージは編集できません。"))
    recipients = check(host, message.service, slot_ids, all_upcoming, subject, body, scheduled_at, editing=message)
    message.total = len(recipients)
    message.slot_ids, message.all_upcoming = ([] if all_upcoming else sorted(slot_ids)), all_upcoming
    message.subject, message.body, message.scheduled_at = subject, body, scheduled_at or clock.now()
    message.status, message.held_reason = MessageStatus.SCHEDULED, ""
    db.session.commit()
    if scheduled_at is None:
        fan_out(message.id)
    return message


def cancel(message: Message) -> None:
    """Cancel a message that has not started. Commits."""
    if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD):
        raise MessageError(_("送信が始まったメッセージは取り消せません。"))
    message.status = MessageStatus.CANCELLED
    db.session.commit()


def held_reason(cancelled: list[Slot], host: User) -> str:
    """Why a scheduled message is held, in the host's language and time zone.

    Stored with the message and shown as it is (its page, the held email): the scheduler that
    writes it has no request, so its locale would otherwise be the default (Japanese) for everyone.
    """
    when = ", ".join(clock.format_datetime_local(s.starts_at, host.timezone, host.locale) for s in cancelled)
    with force_locale(host.locale):
        return _("選んだ開催日時（%(when)s）が中止されたため、送信を保留しました。", when=when)


def fan_out(message_id: int, *, skip_cancelled_slots: bool = False) -> int:
    """Write one outbox row per recipient in one bulk insert, then queue the sends. Commits.

    A chosen slot that was cancelled meanwhile holds the message for the host to decide.
    """
    begin_write()
    # Row lock on PostgreSQL: two schedulers can never fan the same message out twice.
    message = db.session.get(Message, message_id, with_for_update=True)
    if message is None or message.status != MessageStatus.SCHEDULED:
        db.session.commit()
        return 0
    if not message.all_upcoming and not skip_cancelled_slots:
        cancelled = db.session.scalars(select(Slot).where(Slot.id.in_(message.slot_ids or [-1]),
                                                          Slot.status == SlotStatus.CANCELLED)).all()
        if cancelled:
            host = db.session.get(User, message.host_id)
            message.status, message.held_reason = MessageStatus.HELD, held_reason(cancelled, host)
            queue_email("bulk_message_held", to_email=host.email, to_name=host.display_name, locale=host.locale,
                        host_id=host.id, payload={"message_id": message.id})
            db.session.commit()
            return 0
    recipients = audience(message.service, message.slot_ids, message.all_upcoming)
    host = db.session.get(User, message.host_id)
    try:  # checked again: guests booked since, or what was sent today by other means
        _check_limit(host, len(recipients), clock.now(), besides=message)
    except OverDailyLimit as over:
        with force_locale(host.locale):
            reason = _("1日に送れる通数を超えるため、送信を保留しました。") + " " + str(over)
        message.status, message.held_reason = MessageStatus.HELD, reason[:300]
        queue_email("bulk_message_held", to_email=host.email, to_name=host.display_name, locale=host.locale,
                    host_id=host.id, payload={"message_id": message.id})
        db.session.commit()
        return 0
    written = _write_deliveries(message, recipients)
    db.session.commit()
    return written


def _write_deliveries(message: Message, recipients: list[Booking]) -> int:
    """One outbox row per recipient in one bulk insert; the message is then being sent, and its
    sends are queued for after the commit."""
    now = clock.now()
    rows = [dict(kind="bulk_message", status=DeliveryStatus.PENDING, to_email=b.guest_email, to_name=b.guest_name,
                 locale="ja", host_id=message.host_id, booking_id=b.id, slot_id=b.slot_id, bulk_message_id=message.id,
                 payload={}, due_at=now, attempts=0, last_error="", created_at=now) for b in recipients]
    if rows:
        db.session.execute(insert(Delivery), rows)
    message.status, message.started_at, message.total = MessageStatus.SENDING, now, len(rows)
    ids = list(db.session.scalars(select(Delivery.id).where(Delivery.bulk_message_id == message.id)))
    _queue_sends(ids)
    return len(rows)


def _queue_sends(ids: list[int]) -> None:
    from app import jobs  # jobs import this module

    size = current_app.config["MAIL_BATCH_SIZE"]
    for start in range(0, len(ids), size):
        enqueue_after_commit(jobs.send_deliveries, ids[start:start + size], queue="mail")


def release(message: Message) -> int:
    """Send a held message to the guests of the slots still open. Commits."""
    if message.status != MessageStatus.HELD:
        raise MessageError(_("保留中のメッセージではありません。"))
    message.status, message.held_reason = MessageStatus.SCHEDULED, ""
    db.session.commit()
    return fan_out(message.id, skip_cancelled_slots=True)


def start_due_messages() -> int:
    """Fan out every scheduled message whose time has come; return how many started."""
    due = list(db.session.scalars(select(Message.id).where(Message.status == MessageStatus.SCHEDULED,
                                                           Message.scheduled_at <= clock.now())))
    db.session.commit()
    return sum(1 for message_id in due if fan_out(message_id) or True)


@dataclass
class Progress:
    total: int
    sent: int
    failed: int
    cancelled: int

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.cancelled

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def progress(message: Message) -> Progress:
    """Counts by status of the message's outbox rows."""
    return progress_of([message])[message.id]


def progress_of(messages: list[Message]) -> dict[int, Progress]:
    """``progress`` of each message (by id), in one query: the list page shows them all."""
    counts: dict[int, dict] = {m.id: {} for m in messages}
    if messages:
        for message_id, status, n in db.session.execute(
                select(Delivery.bulk_message_id, Delivery.status, func.count())
                .where(Delivery.bulk_message_id.in_(list(counts))).group_by(Delivery.bulk_message_id, Delivery.status)):
            counts[message_id][status] = n
    return {m.id: Progress(total=m.total, sent=counts[m.id].get(DeliveryStatus.SENT, 0),
                           failed=counts[m.id].get(DeliveryStatus.FAILED, 0),
                           cancelled=counts[m.id].get(DeliveryStatus.CANCELLED, 0)) for m in messages}


#: Where a message is, as hosts read it (``stage``): 送信予定 → 送信中 → 送信完了 (or 一部失敗).
STAGES = {
    "scheduled": _l("送信予定"),
    "held": _l("保留中"),
    "sending": _l("送信中"),
    "sent": _l("送信完了"),
    "partly_failed": _l("一部失敗"),
    "failed": _l("送信失敗"),
    "cancelled": _l("取り消し済み"),
}


def stage(message: Message, p: Progress) -> str:
    """The message's stage (a key of ``STAGES``): its status, and for one being sent its rows'.

    A message is sent (or partly failed) once every row is final; a row being retried keeps it
    送信中. Rows cancelled because the booking was cancelled meanwhile count as done.
    """
    if message.status != MessageStatus.SENDING:
        return message.status.value
    if p.done < p.total:
        return "sending"
    if p.failed and p.failed >= p.total - p.cancelled:
        return "failed"
    return "partly_failed" if p.failed else "sent"


def audience_count(message: Message) -> int:
    """How many guests a message that has not started would reach now (guests book and cancel
    after it was composed; fan-out reads the audience again)."""
    if message.all_upcoming:
        chosen = select(Slot.id).where(Slot.service_id == message.service_id, Slot.status == SlotStatus.OPEN,
                                       Slot.starts_at > clock.now())
    else:
        chosen = select(Slot.id).where(Slot.service_id == message.service_id,
                                       Slot.id.in_(message.slot_ids or [-1]))
    return db.session.scalar(select(func.count()).select_from(Booking).join(Booking.slot).where(
        Booking.slot_id.in_(chosen), Booking.status == BookingStatus.CONFIRMED, Slot.status == SlotStatus.OPEN))


def labelled_parts(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into plain parts and placeholders, each placeholder as its label:
    ``"{guest_name}様"`` → ``[("お名前", True), ("様", False)]`` (a message's title on its pages)."""
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(text or ""):
        if match.group(1) not in PLACEHOLDERS:
            continue
        if match.start() > last:
            parts.append((text[last:match.start()], False))
        parts.append((str(PLACEHOLDERS[match.group(1)]), True))
        last = match.end()
    if last < len(text or ""):
        parts.append((text[last:], False))
    return parts


def recipients(message: Message) -> list[Delivery]:
    """The message's outbox rows (per-recipient status)."""
    return db.session.scalars(select(Delivery).where(Delivery.bulk_message_id == message.id)
                              .order_by(Delivery.id)).all()


def resend_failed(message: Message) -> int:
    """Send again to the recipients whose email failed (only them). Commits."""
    begin_write()
    ids = list(db.session.scalars(select(Delivery.id).where(Delivery.bulk_message_id == message.id,
                                                            Delivery.status == DeliveryStatus.FAILED)))
    if ids:
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(
            status=DeliveryStatus.PENDING, attempts=0, due_at=clock.now(), last_error="")
            .execution_options(synchronize_session=False))
        _queue_sends(ids)
    db.session.commit()
    return len(ids)


def message_context(message: Message, booking: Booking) -> dict:
    """What the bulk email template needs for one recipient."""
    values = placeholder_values(booking)
    return {"message": message, "booking": booking, "service": booking.slot.service, "slot": booking.slot,
            "host": booking.slot.service.host, "tz": booking.slot.service.host.timezone,
            "subject_text": fill(message.subject, values), "body_text": fill(message.body, values)}


@email_kind("bulk_message", subject=lambda ctx: ctx["subject_text"])
def _bulk_context(delivery: Delivery) -> dict:
    message = db.session.get(Message, delivery.bulk_message_id)
    booking = db.session.get(Booking, delivery.booking_id)
    if message is None or booking is None or not booking.is_confirmed:
        raise SkipDelivery("message or booking gone")
    return message_context(message, booking)


@email_kind("bulk_message_held", subject=lambda ctx: _("【要確認】メッセージの送信を保留しました"))
def _held_context(delivery: Delivery) -> dict:
    message = db.session.get(Message, delivery.payload["message_id"])
    return {"message": message, "host": db.session.get(User, delivery.host_id),
            "message_url": external_url("messages.detail", message_id=message.id)}
