"""The delivery log as staff read it: SMTP replies, kinds and states in words, the day's counts."""
import ast
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.mail.render import WAITING_PREFIX, registered_kinds
from app.models import Delivery, DeliveryStatus

#: An SMTP reply inside a stored error, as Python writes it: ``(550, b'5.1.1 User unknown')``.
_SMTP_REPLY = re.compile(r"""\((\d{3}), (b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*")""")


def readable_error(error: str) -> str:
    """The SMTP server's answer in a stored delivery error (``550 5.1.1 User unknown``), else the error itself.

    The outbox stores ``<exception class>: <str(exception)>``; for an SMTP refusal that is a
    Python repr, e.g. ``SMTPRecipientsRefused: {'a@example.com': (550, b'5.1.1 User unknown')}``.
    """
    replies = []
    for code, literal in _SMTP_REPLY.findall(error):
        message = ast.literal_eval(literal)
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        replies.append(" ".join([code, *message.split()]))  # a multi-line reply on one line
    return "; ".join(dict.fromkeys(replies)) or error


#: Every email kind as staff read it: what it is, and to whom (予約者宛 / ホスト宛).
KIND_LABELS = {
    "booking_confirmation": _l("お申し込み完了（予約者宛）"),
    "booking_cancelled": _l("キャンセル完了（予約者宛）"),
    "booking_removed": _l("ホストによる予約取り消し（予約者宛）"),
    "slot_moved": _l("開催日時の変更（予約者宛）"),
    "booking_moved": _l("予約者による日時の変更（予約者宛）"),
    "host_booking_moved": _l("予約者による日時の変更のお知らせ（ホスト宛）"),
    "slot_cancelled": _l("開催中止（予約者宛）"),
    "meeting_url": _l("参加URLのご案内（予約者宛）"),
    "meeting_url_waiting": _l("参加URL準備中のお知らせ（予約者宛）"),
    "lesson_reminder": _l("開始前のリマインド（予約者宛）"),
    "bulk_message": _l("一括メッセージ（予約者宛）"),
    "guest_message": _l("ホストから予約者へのメッセージ（予約者宛）"),
    "bulk_message_held": _l("一括メッセージの保留（ホスト宛）"),
    "meeting_host_notice": _l("開始リンクと送信状況（ホスト宛）"),
    "host_booking_notice": _l("新しいご予約のお知らせ（ホスト宛）"),
    "host_cancellation_notice": _l("予約者によるキャンセルのお知らせ（ホスト宛）"),
    "host_notice_digest": _l("ご予約とキャンセルの1時間ごとのまとめ（ホスト宛）"),
    "meeting_trouble": _l("参加URLを用意できない（ホスト宛）"),
    "meeting_delete_failed": _l("ビデオツールのミーティング削除失敗（ホスト宛）"),
    "zoom_relink_needed": _l("Zoom再連携のお願い（ホスト宛）"),
    "zoom_deauthorized": _l("Zoom連携の解除（ホスト宛）"),
    "google_relink_needed": _l("Google Meet再連携のお願い（ホスト宛）"),
    "migration_notice": _l("Zoom連携切り替えの告知（ホスト宛）"),
    "migration_released": _l("旧Zoom連携の終了（ホスト宛）"),
    "password_reset": _l("パスワード再設定（ホスト宛）"),
    "password_changed": _l("パスワード変更のお知らせ（ホスト宛）"),
    "email_verification": _l("メールアドレスの確認（ホスト宛）"),
    "account_exists": _l("登録済みアドレスへの登録（ホスト宛）"),
    "email_change_confirm": _l("メールアドレス変更の確認・新しいアドレスへ（ホスト宛）"),
    "email_change_taken": _l("登録済みアドレスへの変更手続き・そのアドレスへ（ホスト宛）"),
    "email_changed": _l("メールアドレス変更のお知らせ・以前のアドレスへ（ホスト宛）"),
}

#: Outbox states as staff read them (the filter, the log).
STATUS_LABELS = {
    DeliveryStatus.PENDING: _l("送信待ち"),
    DeliveryStatus.SENDING: _l("送信中"),
    DeliveryStatus.SENT: _l("送信済み"),
    DeliveryStatus.FAILED: _l("送信失敗"),
    DeliveryStatus.CANCELLED: _l("取り消し"),
}


def ordered_kinds() -> list[str]:
    """Every registered email kind, guests' first, in the order of ``KIND_LABELS`` (unlabelled ones last)."""
    registered = set(registered_kinds())
    return [k for k in KIND_LABELS if k in registered] + sorted(registered - KIND_LABELS.keys())


def kind_label(kind: str) -> str:
    """An email kind in words (the code itself for a kind without a label yet)."""
    label = KIND_LABELS.get(kind)
    return str(label) if label is not None else kind


def state_label(delivery: Delivery) -> str:
    """A row's state in words; a pending row says whether it waits for its meeting or is being retried,
    a sent one whether it bounced later (a DSN, ``app.mail.bounces``: the reason is in ``bounce_reason``)."""
    if delivery.bounced_at is not None:
        return _("バウンス（送信後に不達の通知）")
    if delivery.status == DeliveryStatus.PENDING and delivery.last_error.startswith(WAITING_PREFIX):
        return _("URL準備中（発行を待っています）")
    if delivery.status == DeliveryStatus.PENDING and delivery.last_error:
        return _("再試行待ち")
    return str(STATUS_LABELS[delivery.status])


#: A pending email this late is worth a look (workers down, the scheduler stopped).
OVERDUE_AFTER = timedelta(minutes=10)


@dataclass
class Overview:
    """What staff look at first (the staff home)."""

    failed_today: int
    overdue: int
    retrying: int


def japan_day_start(moment: datetime) -> datetime:
    """00:00 Japan time of the day of ``moment``, in UTC: staff count days as they live them."""
    local = clock.to_local(moment, clock.JAPAN_TZ)
    return clock.local_to_utc(local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None), clock.JAPAN_TZ)


def overview() -> Overview:
    """Failed today (Japan time), due but not sent, and being retried, in one query."""
    now = clock.now()
    # A row that failed was last claimed when its last attempt began (there is no failed_at).
    failed_at = func.coalesce(Delivery.claimed_at, Delivery.due_at)
    pending = Delivery.status == DeliveryStatus.PENDING
    row = db.session.execute(select(
        func.count().filter(Delivery.status == DeliveryStatus.FAILED, failed_at >= japan_day_start(now)),
        func.count().filter(pending, Delivery.due_at <= now - OVERDUE_AFTER),
        func.count().filter(pending, Delivery.last_error != "", Delivery.last_error.not_like(WAITING_PREFIX + "%")),
    )).one()
    return Overview(failed_today=row[0], overdue=row[1], retrying=row[2])

