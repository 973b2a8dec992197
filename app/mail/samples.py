"""Realistic sample data for every email, for the staff template gallery (nothing is saved).

Each kind has one or more variants a staff member needs to check. Every registered kind must
have samples: the gallery test walks them all, in Japanese and English.
"""
from datetime import timedelta
from types import SimpleNamespace

from flask_babel import force_locale

from app import clock
from app.messages.bulk import held_reason
from app.meetings.timing import URL_LEAD_HOURS
from app.models import LinkBreak, MeetingFailure
from app.urls import external_url


#: The people and texts of the samples, per language: an English preview reads as the email an
#: English-speaking host or guest gets, with nothing Japanese in it.
WORDS = {
    "ja": {"host": "山田 花子", "guest": "佐藤 一郎", "guest2": "鈴木 花",
           "title": "はじめてのオンライン書道（90分）",
           "notes": "筆ペンと半紙をご用意ください。\n資料: https://example.com/shodo.pdf",
           "message_subject": "持ち物のご案内", "bulk_subject": "佐藤 一郎さん、持ち物のご案内",
           "bulk_body": "はじめてのオンライン書道は、明日の10:00からです。\n筆ペンをお持ちください。",
           "removal": "同じ方から重複してお申し込みがあったため、こちらのご予約を取り消しました。",
           "address": "東京都渋谷区神南1-2-3 青山ビル4階",
           "policy": "前日まではキャンセル無料です。当日のキャンセルはご遠慮ください。"},
    "en": {"host": "Hanako Yamada", "guest": "Ichiro Sato", "guest2": "Hana Suzuki",
           "title": "Calligraphy online for beginners (90 min)",
           "notes": "Please have a brush pen and paper ready.\nHandout: https://example.com/shodo.pdf",
           "message_subject": "What to bring", "bulk_subject": "Ichiro Sato, what to bring",
           "bulk_body": "The calligraphy lesson starts soon.\nPlease bring a brush pen.",
           "removal": "You booked this lesson twice, so I removed this booking.",
           "address": "4F Aoyama Bldg, 1-2-3 Jinnan, Shibuya, Tokyo",
           "policy": "Free cancellation until the day before. Please do not cancel on the day."},
}


def _words(ctx) -> dict:
    """The sample texts in the language of the sample being built."""
    return WORDS[ctx["host"].locale]


def _base(locale="ja"):
    words = WORDS[locale]
    start = (clock.now() + timedelta(days=3)).replace(hour=1, minute=0, second=0, microsecond=0)
    host = SimpleNamespace(display_name=words["host"], email="hanako@example.com", timezone="Asia/Tokyo",
                           locale=locale)
    service = SimpleNamespace(title=words["title"], duration_minutes=90, host=host, host_notes=words["notes"],
                              venue_address="", cancellation_policy="")
    slot = SimpleNamespace(id=1, starts_at=start, ends_at=start + timedelta(minutes=90), service=service)
    booking = SimpleNamespace(guest_name=words["guest"], guest_email="ichiro@example.com", slot=slot,
                              join_token="sample")
    meeting = SimpleNamespace(password="a1B2c3D4e5", join_url="https://zoom.us/j/81234567890?pwd=sample")
    return {
        "host": host, "service": service, "slot": slot, "booking": booking, "tz": "Asia/Tokyo",
        "cancel_url": external_url("booking.cancel", token="sample"),
        "service_url": external_url("booking.service_page", public_id="sample"),
        "reschedule_url": external_url("booking.reschedule", token="sample"),
        "join_link": external_url("booking.join", token="sample"),
        # booking.joining / calendar.links: a Zoom booking whose URL comes 24 hours ahead
        "venue": "video_tool", "tool_name": "Zoom", "url_promise": "ahead", "url_lead_hours": URL_LEAD_HOURS,
        "ics_url": external_url("booking.calendar_file", public_id="sample", token="sample"),
        "google_calendar_url": external_url("booking.google_calendar", public_id="sample", token="sample"),
        "settings_url": external_url("zoom.settings"),
        "slot_url": external_url("services.detail", service_id=1),
        "start_url": external_url("services.start_meeting", slot_id=1),
        "meeting": meeting,
    }


def _with(**changes):
    def build(locale="ja"):
        ctx = _base(locale)
        for key, value in changes.items():
            ctx[key] = value(ctx) if callable(value) else value
        return ctx
    return build


def _no_notes(ctx):
    ctx["service"].host_notes = ""
    return ctx["service"]


def _in_person(ctx):
    """The sample service held at a venue, with the host's cancellation policy."""
    ctx["service"].venue_address = _words(ctx)["address"]
    ctx["service"].cancellation_policy = _words(ctx)["policy"]
    return ctx["service"]


def _guest_state(ctx, state, name=None, email="ichiro@example.com", failure=None):
    return SimpleNamespace(guest_name=name or _words(ctx)["guest"], guest_email=email, state=state, failure=failure,
                           sent_at=clock.now(), next_try=clock.now() + timedelta(hours=9))


def _message(ctx):
    # The held reason as the product stores it: in the host's language.
    return SimpleNamespace(subject=_words(ctx)["message_subject"],
                           held_reason=held_reason([ctx["slot"]], ctx["host"]))


def _notice_slot(ctx, seats_left=3):
    """The sample date as host notices read it: open, with its seats."""
    slot = ctx["slot"]
    return SimpleNamespace(id=1, starts_at=slot.starts_at, ends_at=slot.ends_at, service=ctx["service"],
                           is_open=True, capacity=5, seats_left=seats_left)


def _notice_bookings(ctx, *, first_cancelled=False):
    """Two guests who booked a minute apart (the first cancelled since, when asked)."""
    now, words = clock.now(), _words(ctx)
    return [SimpleNamespace(guest_name=words["guest"], guest_email="ichiro@example.com",
                            created_at=now - timedelta(minutes=2), cancelled_at=now - timedelta(minutes=1),
                            is_confirmed=not first_cancelled),
            SimpleNamespace(guest_name=words["guest2"], guest_email="hana@example.com",
                            created_at=now - timedelta(minutes=1), cancelled_at=None, is_confirmed=True)]


def _digest_news(ctx):
    """The digest's hour: two bookings of the sample date and one guest's cancellation."""
    booked = _notice_bookings(ctx, first_cancelled=True)
    return [SimpleNamespace(service=SimpleNamespace(id=1, title=ctx["service"].title), slot=_notice_slot(ctx),
                            booked=booked, cancelled=booked[:1],
                            slot_url=external_url("services.slot_detail", slot_id=1))]


def _digest_hour(ctx):
    start = clock.now().replace(minute=0, second=0, microsecond=0)
    return clock.format_range_local(start, start + timedelta(hours=1), ctx["tz"], ctx["host"].locale)


_HOST_NOTICE = dict(zone="", slot=_notice_slot, slot_url=lambda ctx: external_url("services.slot_detail", slot_id=1),
                    settings_url=lambda ctx: external_url("account.settings"))


SAMPLES = {
    "booking_confirmation": {
        "Zoom（URLは開催前に送信）": _with(),
        "ホストからの連絡事項あり（Zoom OFF・手動URL）": _with(venue="online", url_promise=None),
        "連絡事項なし": _with(venue="online", url_promise=None, service=_no_notes),
        "対面（会場の住所・キャンセルポリシーあり）": _with(
            service=_in_person, venue="in_person", url_promise=None,
            venue_address=lambda ctx: ctx["service"].venue_address,
            map_url="https://www.google.com/maps/search/?api=1&query=sample"),
    },
    "booking_cancelled": {"標準": _with()},
    "booking_removed": {"ホストからのメッセージあり": _with(host_message=lambda ctx: _words(ctx)["removal"]),
                        "メッセージなし": _with(host_message="")},
    "slot_moved": {"標準": _with(previous_starts_at=lambda ctx: ctx["slot"].starts_at - timedelta(days=1))},
    "slot_cancelled": {"標準": _with()},
    "password_reset": {"標準": _with(user=lambda ctx: ctx["host"],
                                    reset_url=lambda ctx: external_url("auth.reset_password", token="sample"))},
    "email_verification": {"標準": _with(user=lambda ctx: ctx["host"], valid_days=7,
                                        verify_url=lambda ctx: external_url("auth.verify_email", token="sample"))},
    "email_change_confirm": {"標準": _with(
        user=lambda ctx: ctx["host"], new_email="hanako.new@example.com", valid_hours=24,
        confirm_url=lambda ctx: external_url("account.confirm_email_change", token="sample"))},
    "email_change_taken": {"標準": _with(new_email="hanako.new@example.com", login_url=lambda ctx: external_url("auth.login"),
                                        reset_url=lambda ctx: external_url("auth.request_reset"))},
    "email_changed": {"標準": _with(user=lambda ctx: ctx["host"], new_email="hanako.new@example.com",
                                   changed_at=lambda ctx: clock.now(),
                                   reset_url=lambda ctx: external_url("auth.request_reset"))},
    "account_exists": {"標準": _with(user=lambda ctx: ctx["host"], login_url=lambda ctx: external_url("auth.login"),
                                    reset_url=lambda ctx: external_url("auth.request_reset"))},
    "password_changed": {"標準": _with(user=lambda ctx: ctx["host"], changed_at=lambda ctx: clock.now(),
                                      reset_url=lambda ctx: external_url("auth.request_reset"))},
    "meeting_url": {
        "Zoom無料（Basic）ホスト・40分を超えるサービス": _with(cut_minutes=40),
        "Zoom有料（Licensed）ホスト": _with(cut_minutes=None),
        "Google Meet（無料アカウント・3人以上で60分）": _with(
            tool_name="Google Meet", cut_minutes=60,
            meeting=SimpleNamespace(password="", join_url="https://meet.google.com/abc-defg-hij")),
        "直前のご予約（すぐに送信）": _with(cut_minutes=None, slot=lambda ctx: SimpleNamespace(
            id=1, starts_at=clock.now() + timedelta(hours=2), ends_at=clock.now() + timedelta(hours=3, minutes=30),
            service=ctx["service"])),
    },
    "meeting_url_waiting": {"URLを準備中（用意でき次第、自動で送信）": _with()},
    "lesson_reminder": {
        "開始1時間前（Zoom）": _with(left_hours=1, opens_minutes=10, cut_minutes=None),
        "開始10分前・Zoom無料（40分で一度終了）": _with(left_minutes=10, opens_minutes=10, cut_minutes=40),
    },
    "meeting_host_notice": {
        "全員に送信済み": _with(all_sent=True, has_meeting=True, guests=lambda ctx: [
            _guest_state(ctx, "sent"),
            _guest_state(ctx, "sent", name=_words(ctx)["guest2"], email="hana@example.com")]),
        "まだ送れていない予約者あり": _with(all_sent=False, has_meeting=True, guests=lambda ctx: [
            _guest_state(ctx, "sent"),
            _guest_state(ctx, "waiting", name=_words(ctx)["guest2"], email="hana@example.com",
                         failure=MeetingFailure.DAILY_LIMIT)]),
    },
    "meeting_delete_failed": {"Zoomが応答しない": _with(
        reason=MeetingFailure.UNAVAILABLE.delete_text("Zoom"),
        meeting=lambda ctx: SimpleNamespace(external_id="81234567890"))},
    "meeting_trouble": {"連携切れ": _with(failure=MeetingFailure.LINK_BROKEN),
                        "1日の上限": _with(failure=MeetingFailure.DAILY_LIMIT),
                        "Zoomが応答しない": _with(failure=MeetingFailure.UNAVAILABLE),
                        "Google Meetが応答しない": _with(failure=MeetingFailure.UNAVAILABLE, tool_name="Google Meet")},
    "zoom_relink_needed": {"認可切れ": _with(reason=LinkBreak.text_of(LinkBreak.GRANT_LOST, "Zoom")),
                           "別のホストで連携": _with(reason=LinkBreak.text_of(LinkBreak.TAKEN_OVER, "Zoom"))},
    "zoom_deauthorized": {"標準": _with()},
    "google_relink_needed": {"認可切れ": _with(reason=LinkBreak.text_of(LinkBreak.GRANT_LOST, "Google Meet")),
                             "カレンダーの許可なし": _with(reason=LinkBreak.text_of(LinkBreak.SCOPE_MISSING, "Google Meet"))},
    "host_booking_notice": {
        "2件のご予約（1件はその後キャンセル）": _with(**_HOST_NOTICE,
                                                booked=lambda ctx: _notice_bookings(ctx, first_cancelled=True)),
        "日本以外のタイムゾーン（ロサンゼルス）": _with(**{
            **_HOST_NOTICE, "tz": "America/Los_Angeles", "booked": lambda ctx: _notice_bookings(ctx)[:1],
            "zone": lambda ctx: clock.zone_label("America/Los_Angeles", ctx["host"].locale)}),
    },
    "host_cancellation_notice": {"標準": _with(**{
        **_HOST_NOTICE, "slot": lambda ctx: _notice_slot(ctx, seats_left=4),
        "cancelled": lambda ctx: _notice_bookings(ctx, first_cancelled=True)[:1]})},
    "host_notice_digest": {"標準": _with(zone="", settings_url=lambda ctx: external_url("account.settings"),
                                        news=_digest_news, booked_total=2, cancelled_total=1,
                                        period_label=_digest_hour)},
    "booking_moved": {"標準": _with(previous_starts_at=lambda ctx: ctx["slot"].starts_at - timedelta(days=1))},
    "host_booking_moved": {"標準": _with(**{
        **_HOST_NOTICE,
        "booking": lambda ctx: SimpleNamespace(guest_name=_words(ctx)["guest"], guest_email="ichiro@example.com",
                                               is_confirmed=True),
        "previous_starts_at": lambda ctx: ctx["slot"].starts_at - timedelta(days=1)})},
    "guest_message": {"標準": _with(subject_text=lambda ctx: _words(ctx)["message_subject"],
                                   body_text=lambda ctx: _words(ctx)["bulk_body"])},
    "bulk_message": {"標準": _with(message=_message, subject_text=lambda ctx: _words(ctx)["bulk_subject"],
                                  body_text=lambda ctx: _words(ctx)["bulk_body"])},
    "bulk_message_held": {"標準": _with(message=_message,
                                       message_url=lambda ctx: external_url("messages.detail", message_id=1))},
    "migration_notice": {"標準": _with(deadline=lambda ctx: clock.now() + timedelta(days=30), bookings=[],
                                      compose_urls=[])},
    "migration_released": {"影響するご予約あり": _with(
        deadline=lambda ctx: clock.now(), bookings=lambda ctx: [ctx["booking"]],
        compose_urls=lambda ctx: [(ctx["service"], external_url("messages.compose", service_id=1, slot_ids=[1]))])},
}


def sample_contexts(kind: str, locale: str = "ja") -> dict:
    """Variant name → a fresh sample context for ``kind``, its people and texts in ``locale``."""
    with force_locale(locale):
        return {name: build(locale) for name, build in SAMPLES[kind].items()}
