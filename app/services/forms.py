"""Service and slot forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateField, DateTimeLocalField, IntegerField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField, TimeField)
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from app.forms import SingleLine
from app.models import ServiceKind, Venue
from app.meetings.timing import REMINDER_CHOICES, URL_LEAD_CHOICES
from app.models.message import BODY_MAX, SUBJECT_MAX
from app.services.repeat import MAX_WEEKS as REPEAT_MAX_WEEKS
from app.models.service import (CANCELLATION_POLICY_MAX, DESCRIPTION_MAX, HOST_NOTES_MAX, MEETING_URL_MAX, TITLE_MAX,
                                VENUE_ADDRESS_MAX)

KIND_LABELS = {
    ServiceKind.ONLINE: _l("オンラインタイプ"),
    ServiceKind.CLASS_EVENT: _l("クラス・イベントタイプ"),
    ServiceKind.PRIVATE: _l("プライベート予約タイプ"),
    ServiceKind.SUBSCRIPTION: _l("サブスクタイプ"),
}
VENUE_LABELS = {
    Venue.ZOOM: _l("Zoom（URLを自動発行して予約者に送信）"),
    Venue.GOOGLE_MEET: _l("Google Meet（URLを自動発行して予約者に送信）"),
    Venue.FIXED_URL: _l("自分のURL（いつも同じ参加URLを予約者に送信）"),
    Venue.MANUAL_URL: _l("別のビデオツール・URLを自分で案内（ホストからの連絡事項に記載）"),
    Venue.IN_PERSON: _l("対面（会場で開催）"),
}


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes (the reminders of a schedule)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def reminder_label(minutes: int):
    """「開始の1時間前」, 「開始の10分前」."""
    if minutes % 60 == 0:
        return _l("開始の%(n)d時間前", n=minutes // 60)
    return _l("開始の%(n)d分前", n=minutes)


#: Minutes before the start the guest's 「参加する」 may open (``services.join_opens_minutes``).
JOIN_OPENS_CHOICES = (5, 10, 15, 30, 60)

#: 「予約者による日時の変更」: until how many hours before the start a guest may move their booking
#: (``services.reschedule_cutoff_hours``); None: guests cannot move it themselves.
RESCHEDULE_CUTOFF_LABELS = {
    None: _l("受け付けない"),
    1: _l("開始の1時間前まで"),
    3: _l("開始の3時間前まで"),
    24: _l("開始の24時間前まで"),
    48: _l("開始の48時間前まで"),
    72: _l("開始の72時間前まで"),
}


def _cutoff_hours(value):
    """The select's value as hours (None for 「受け付けない」); ValueError for anything else."""
    if value in (None, "", "None"):
        return None
    return int(value)


class ServiceForm(FlaskForm):
    kind = SelectField(_l("サービスタイプ"), choices=[(k.value, label) for k, label in KIND_LABELS.items()],
                       validators=[DataRequired()])
    title = StringField(_l("タイトル"), validators=[
        DataRequired(_l("タイトルを入力してください。")), SingleLine(),
        Length(max=TITLE_MAX, message=_l("タイトルは%(max)d文字以内で入力してください。", max=TITLE_MAX))])
    description = TextAreaField(_l("説明"), validators=[
        Length(max=DESCRIPTION_MAX, message=_l("説明は%(max)d文字以内で入力してください。", max=DESCRIPTION_MAX))])
    duration_minutes = IntegerField(_l("所要時間（分）"), default=60, validators=[
        InputRequired(_l("所要時間を分単位の数字で入力してください。")),
        NumberRange(min=1, max=1440, message=_l("所要時間は1〜1440分で入力してください。"))])
    capacity = IntegerField(_l("定員（1枠あたり）"), default=1, validators=[
        InputRequired(_l("定員を数字で入力してください。")),
        NumberRange(min=1, max=1000, message=_l("定員は1〜1000人で入力してください。"))])
    venue = RadioField(_l("開催方法"), choices=[(v.value, label) for v, label in VENUE_LABELS.items()],
                       default=Venue.ZOOM.value, validators=[DataRequired(_l("開催方法を選んでください。"))])
    #: Shown to guests before they book (and in their emails) when the venue is 対面.
    venue_address = StringField(_l("会場の住所（対面の場合）"), validators=[
        SingleLine(), Length(max=VENUE_ADDRESS_MAX,
                             message=_l("会場の住所は%(max)d文字以内で入力してください。", max=VENUE_ADDRESS_MAX))],
        filters=[lambda value: value.strip() if value else value])
    #: The host's own meeting URL, sent to guests when the venue is 自分のURL.
    meeting_url = StringField(_l("参加URL（自分のURLの場合）"), validators=[
        SingleLine(), Length(max=MEETING_URL_MAX, message=_l("参加URLは%(max)d文字以内で入力してください。", max=MEETING_URL_MAX))],
        filters=[lambda value: value.strip() if value else value])
    host_notes = TextAreaField(_l("ホストからの連絡事項（申し込み完了メールに記載されます）"), validators=[
        Length(max=HOST_NOTES_MAX, message=_l("連絡事項は%(max)d文字以内で入力してください。", max=HOST_NOTES_MAX))])
    cancellation_policy = TextAreaField(_l("キャンセルポリシー"), validators=[
        Length(max=CANCELLATION_POLICY_MAX, message=_l("キャンセルポリシーは%(max)d文字以内で入力してください。",
                                                       max=CANCELLATION_POLICY_MAX))])

    #: 「参加する」 on the guest's lesson page opens this many minutes before the start.
    join_opens_minutes = SelectField(_l("予約者の「参加する」ボタンが押せるようになる時刻"), coerce=int, default=10,
                                     choices=[(n, _l("開始の%(n)d分前から", n=n)) for n in JOIN_OPENS_CHOICES])
    #: The lesson-day emails (online services): when the URL email goes, and the reminders.
    url_lead_hours = SelectField(_l("参加URLのご案内メールを送る時刻"), coerce=int, default=24,
                                 choices=[(n, _l("開始の%(n)d時間前", n=n)) for n in URL_LEAD_CHOICES])
    reminder_minutes = MultiCheckboxField(_l("開始前のリマインドメール"), coerce=int, default=[],
                                          choices=[(n, reminder_label(n)) for n in REMINDER_CHOICES])
    per_guest_links = BooleanField(_l("予約者ごとの参加URLを発行する（Zoom有料プラン）"))
    reschedule_cutoff_hours = SelectField(
        _l("予約者による日時の変更"), coerce=_cutoff_hours, default=24,
        choices=[("" if hours is None else str(hours), label) for hours, label in RESCHEDULE_CUTOFF_LABELS.items()])

    def validate_venue(self, field):
        if field.data in (Venue.ZOOM.value, Venue.GOOGLE_MEET.value) and self.kind.data != ServiceKind.ONLINE.value:
            raise ValidationError(_l("URLの自動発行（ZoomやGoogle Meet）はオンラインタイプのサービスでのみ選べます。"))

    def validate_meeting_url(self, field):
        """The fixed URL goes to every guest as it is: it must be a full https address."""
        if self.venue.data != Venue.FIXED_URL.value:
            return
        if not field.data:
            raise ValidationError(_l("参加URLを入力してください（https:// で始まるURL）。"))
        if not field.data.startswith("https://") or " " in field.data or len(field.data) < 12:
            raise ValidationError(_l("参加URLは https:// で始まる正しいURLを入力してください。"))

    def validate_venue_address(self, field):
        """An in-person service tells guests where to come before they book."""
        if self.venue.data == Venue.IN_PERSON.value and not field.data:
            raise ValidationError(_l("対面のサービスでは、会場の住所を入力してください（予約ページと予約者へのメールに表示されます）。"))


class SlotForm(FlaskForm):
    starts_at = DateTimeLocalField(_l("開催日時"), format="%Y-%m-%dT%H:%M", validators=[
        DataRequired(_l("開催日時を正しく入力してください（例: 2026-06-20 10:00）。"))])


#: 曜日 of the repeat form (``date.weekday()`` numbers); "" repeats the start date's own weekday.
WEEKDAY_LABELS = [_l("月曜日"), _l("火曜日"), _l("水曜日"), _l("木曜日"), _l("金曜日"), _l("土曜日"), _l("日曜日")]


class RepeatForm(FlaskForm):
    """「まとめて追加」: every week on a weekday at a time, a number of times, from a start date.

    Read from the query string for the preview (no CSRF: nothing changes) and posted to add.
    """

    start_date = DateField(_l("開始日"), validators=[
        DataRequired(_l("開始日を正しく入力してください（例: 2026-06-02）。"))])
    weekday = SelectField(_l("曜日"), choices=[("", _l("開始日と同じ曜日"))]
                          + [(str(number), label) for number, label in enumerate(WEEKDAY_LABELS)],
                          validate_choice=True, default="")
    at = TimeField(_l("時刻"), format="%H:%M", validators=[
        DataRequired(_l("時刻を正しく入力してください（例: 20:00）。"))])
    count = IntegerField(_l("回数（週）"), default=8, validators=[
        InputRequired(_l("回数を数字で入力してください。")),
        NumberRange(min=1, max=REPEAT_MAX_WEEKS,
                    message=_l("回数は1〜%(max)d回（1年分）までです。それより先の日時は、あとで続けて追加してください。",
                               max=REPEAT_MAX_WEEKS))])

    @property
    def weekday_number(self) -> int | None:
        return int(self.weekday.data) if self.weekday.data not in (None, "") else None


class NotesForm(FlaskForm):
    host_notes = TextAreaField(_l("ホストからの連絡事項"), validators=[
        Length(max=HOST_NOTES_MAX, message=_l("連絡事項は%(max)d文字以内で入力してください。", max=HOST_NOTES_MAX))])


#: The longest message a host may add when removing a booking.
REMOVAL_MESSAGE_MAX = 1000


class RemoveBookingForm(FlaskForm):
    message = TextAreaField(_l("予約者へのメッセージ（任意）"), validators=[
        Length(max=REMOVAL_MESSAGE_MAX,
               message=_l("メッセージは%(max)d文字以内で入力してください。", max=REMOVAL_MESSAGE_MAX))])


class GuestMessageForm(FlaskForm):
    """「メッセージを送る」: a message to one guest of a slot (the same limits as a bulk message's)."""

    subject = StringField(_l("件名"), validators=[
        DataRequired(_l("件名を入力してください。")),
        SingleLine(_l("件名に改行は使えません。1行で入力してください。")),
        Length(max=SUBJECT_MAX, message=_l("件名は%(max)d文字以内で入力してください。", max=SUBJECT_MAX))],
        filters=[lambda value: value.strip() if value else value])
    body = TextAreaField(_l("本文"), validators=[
        DataRequired(_l("本文を入力してください。")),
        Length(max=BODY_MAX, message=_l("本文は%(max)d文字以内で入力してください。", max=BODY_MAX))])
