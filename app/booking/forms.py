"""The guest booking form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
import re
import unicodedata

from wtforms import EmailField, HiddenField, RadioField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from app.forms import SingleLine

#: A name a guest types: a person's name, not a message (it is shown to the host and put in the
#: confirmation's To line, so a bot must not be able to write "Visit http://… to claim" there).
GUEST_NAME_FORM_MAX = 40
#: Anything that reads as a link or an address: a scheme, www., an @, or a name under a common
#: top-level domain (``spam.example`` too: the documentation domains spammers test with).
_LINKISH = re.compile(r"(?i)(://|www\.|@|[a-z0-9-]\.(?:com|net|org|info|biz|jp|co|io|ly|me|ru|cn|xyz|top|site|"
                      r"online|shop|app|dev|link|click|us|uk|de|tk|gl|to|gg|example|test)\b)")


def plain_name(form, field):
    """Refuse a name with a URL, an address or markup in it (full-width forms too)."""
    text = unicodedata.normalize("NFKC", field.data or "")
    if _LINKISH.search(text) or any(ch in text for ch in "<>"):
        raise ValidationError(_l("お名前にURLやメールアドレス、記号（< >）は使えません。お名前だけを入力してください。"))


class BookingForm(FlaskForm):
    slot_id = RadioField(_l("開催日時"), coerce=int, validate_choice=False,
                         validators=[DataRequired(_l("開催日時を選んでください。"))])
    guest_name = StringField(_l("お名前"), validators=[
        DataRequired(_l("お名前を入力してください。")), SingleLine(), plain_name,
        Length(max=GUEST_NAME_FORM_MAX,
               message=_l("お名前は%(max)d文字以内で入力してください。", max=GUEST_NAME_FORM_MAX))])
    guest_email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False),
        Length(max=254)], filters=[lambda value: value.strip() if value else value])
    #: The bot check (``app.booking.guard``): when this rendering was made, signed.
    form_token = HiddenField()
    #: Hidden from people (CSS and aria-hidden); bots fill it in.
    website = StringField(_l("ウェブサイト（空欄のままにしてください）"))
    #: The confirm step's buttons. A post without ``confirm`` only shows what would be booked (the
    #: data goes back in hidden fields); 「この内容で申し込む」 sends ``confirm`` and books; ``back``
    #: returns to the form with what was typed.
    confirm = SubmitField(_l("この内容で申し込む"))
    back = SubmitField(_l("入力画面に戻る"))


class RescheduleForm(FlaskForm):
    """「日時を変更」: the new date of the guest's booking (``app.booking.reschedule``)."""

    slot_id = RadioField(_l("新しい開催日時"), coerce=int, validate_choice=False,
                         validators=[DataRequired(_l("新しい開催日時を選んでください。"))])
