"""The bulk message composer."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.forms import SingleLine
from app.messages import bulk
from app.models.message import BODY_MAX, SUBJECT_MAX


class MessageForm(FlaskForm):
    slot_ids = SelectMultipleField(_l("送信先の開催日時"), coerce=int, validate_choice=False,
                                   widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    all_upcoming = BooleanField(_l("このサービスの今後のすべての予約者に送る"))
    #: Only these guests of the chosen slots (「欠席の方にメッセージを送る」); empty: all of them.
    booking_ids = SelectMultipleField(coerce=int, validate_choice=False)
    subject = StringField(_l("件名"), validators=[
        DataRequired(_l("件名を入力してください。")),
        SingleLine(_l("件名に改行は使えません。1行で入力してください。")),
        Length(max=SUBJECT_MAX, message=_l("件名は%(max)d文字以内で入力してください。", max=SUBJECT_MAX))])
    body = TextAreaField(_l("本文"), validators=[
        DataRequired(_l("本文を入力してください。")),
        Length(max=BODY_MAX, message=_l("本文は%(max)d文字以内で入力してください。", max=BODY_MAX))])
    send_mode = RadioField(_l("送信タイミング"), default="now", choices=[
        ("now", _l("今すぐ送信")), ("schedule", _l("日時を指定して予約送信"))])
    #: Read in the host's time zone; the composer names that zone in the label (``routes._compose_page``).
    scheduled_at = DateTimeLocalField(_l("送信日時"), format="%Y-%m-%dT%H:%M", validators=[Optional()])

    def validate_scheduled_at(self, field):
        if self.send_mode.data == "schedule" and field.data is None:
            raise ValidationError(_l("予約送信の日時を入力してください。"))

    def validate_subject(self, field):
        self._known_placeholders_only(field)

    def validate_body(self, field):
        self._known_placeholders_only(field)

    @staticmethod
    def _known_placeholders_only(field):
        # ``{名前}`` would reach the guest as typed: refused before the preview shows it as sent.
        error = bulk.unknown_placeholders_error(field.data or "")
        if error:
            raise ValidationError(error)

    def validate_slot_ids(self, field):
        if not self.all_upcoming.data and not field.data:
            raise ValidationError(_l("送信先の開催日時を1つ以上選んでください。"))
