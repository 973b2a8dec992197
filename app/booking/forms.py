"""The guest booking form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, StringField
from wtforms.validators import DataRequired, Email, Length

from app.forms import SingleLine
from app.models.booking import GUEST_NAME_MAX


class BookingForm(FlaskForm):
    slot_id = RadioField(_l("開催日時"), coerce=int, validate_choice=False,
                         validators=[DataRequired(_l("開催日時を選んでください。"))])
    guest_name = StringField(_l("お名前"), validators=[
        DataRequired(_l("お名前を入力してください。")), SingleLine(),
        Length(max=GUEST_NAME_MAX, message=_l("お名前は%(max)d文字以内で入力してください。", max=GUEST_NAME_MAX))])
    guest_email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False),
        Length(max=254)], filters=[lambda value: value.strip() if value else value])
