"""Realistic sample data for every email, for the staff template gallery (nothing is saved).

Each kind has one or more variants a staff member needs to check. Every registered kind must
have samples: the gallery test walks them all, in Japanese and English.
"""
from datetime import timedelta
from types import SimpleNamespace

from app import clock
from app.models.zoom import LinkBreak, MeetingFailure
from app.urls import external_url


def _base():
    start = (clock.now() + timedelta(days=3)).replace(hour=1, minute=0, second=0, microsecond=0)
    host = SimpleNamespace(display_name="山田 花子", email="hanako@example.com", timezone="Asia/Tokyo", locale="ja")
    service = SimpleNamespace(title="はじめてのオンライン書道（90分）", duration_minutes=90, host=host,
                              host_notes="筆ペンと半紙をご用意ください。\n資料: https://example.com/shodo.pdf")
    slot = SimpleNamespace(id=1, starts_at=start, ends_at=start + timedelta(minutes=90), service=service)
    booking = SimpleNamespace(guest_name="佐藤 一郎", guest_email="ichiro@example.com", slot=slot, join_token="sample")
    meeting = SimpleNamespace(password="a1B2c3D4e5", join_url="https://zoom.us/j/81234567890?pwd=sample")
    return {
        "host": host, "service": service, "slot": slot, "booking": booking, "tz": "Asia/Tokyo",
        "cancel_url": external_url("booking.cancel", token="sample"),
        "service_url": external_url("booking.service_page", public_id="sample"),
        "join_link": external_url("booking.join", token="sample"),
        "settings_url": external_url("zoom.settings"),
        "slot_url": external_url("services.detail", service_id=1),
        "start_url": external_url("services.start_meeting", slot_id=1),
        "meeting": meeting,
    }


def _with(**changes):
    def build():
        ctx = _base()
        for key, value in changes.items():
            ctx[key] = value(ctx) if callable(value) else value
        return ctx
    return build


def _no_notes(ctx):
    ctx["service"].host_notes = ""
    return ctx["service"]


def _message(ctx):
    return SimpleNamespace(subject="持ち物のご案内", held_reason="選んだ開催日時が中止されたため、送信を保留しました。")


SAMPLES = {
    "booking_confirmation": {
        "ホストからの連絡事項あり（Zoom OFF・手動URL）": _with(),
        "連絡事項なし": _with(service=_no_notes),
    },
    "booking_cancelled": {"標準": _with()},
    "slot_moved": {"標準": _with(previous_starts_at=lambda ctx: ctx["slot"].starts_at - timedelta(days=1))},
    "slot_cancelled": {"標準": _with()},
    "password_reset": {"標準": _with(user=lambda ctx: ctx["host"],
                                    reset_url=lambda ctx: external_url("auth.reset_password", token="sample"))},
    "zoom_url": {
        "無料（Basic）ホスト・40分を超えるサービス": _with(basic_cut=True),
        "有料（Licensed）ホスト": _with(basic_cut=False),
        "直前のご予約（すぐに送信）": _with(basic_cut=False, slot=lambda ctx: SimpleNamespace(
            id=1, starts_at=clock.now() + timedelta(hours=2), ends_at=clock.now() + timedelta(hours=3, minutes=30),
            service=ctx["service"])),
        "URLを用意できない（ホストから送ります）": _with(meeting=None, basic_cut=False),
    },
    "zoom_host_notice": {"標準": _with(bookings=lambda ctx: [ctx["booking"], SimpleNamespace(
        guest_name="鈴木 花", guest_email="hana@example.com")])},
    "zoom_trouble": {"連携切れ": _with(reason=MeetingFailure.LINK_BROKEN.text),
                     "1日の上限": _with(reason=MeetingFailure.DAILY_LIMIT.text),
                     "Zoomが応答しない": _with(reason=MeetingFailure.ZOOM_UNAVAILABLE.text)},
    "zoom_relink_needed": {"認可切れ": _with(reason=LinkBreak.text_of(LinkBreak.GRANT_LOST)),
                           "別のホストで連携": _with(reason=LinkBreak.text_of(LinkBreak.TAKEN_OVER))},
    "zoom_deauthorized": {"標準": _with()},
    "bulk_message": {"標準": _with(message=_message, subject_text="佐藤 一郎さん、持ち物のご案内",
                                  body_text="はじめてのオンライン書道は{日時}からです。\n筆ペンをお持ちください。")},
    "bulk_message_held": {"標準": _with(message=_message,
                                       message_url=lambda ctx: external_url("messages.detail", message_id=1))},
    "migration_notice": {"標準": _with(deadline=lambda ctx: clock.now() + timedelta(days=30), bookings=[],
                                      compose_urls=[])},
    "migration_released": {"影響するご予約あり": _with(
        deadline=lambda ctx: clock.now(), bookings=lambda ctx: [ctx["booking"]],
        compose_urls=lambda ctx: [(ctx["service"], external_url("messages.compose", service_id=1, slot_ids=[1]))])},
}


def sample_contexts(kind: str) -> dict:
    """Variant name → a fresh sample context for ``kind``."""
    return {name: build() for name, build in SAMPLES[kind].items()}
