"""The account settings forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.account.profile import BIO_MAX, DISPLAY_NAME_MAX
from app.auth import passwords
from app.auth.forms import confirm_field, new_password_field
from app.forms import SingleLine


class AccountSettingsForm(FlaskForm):
    #: Choices are set per request (in the reader's language); ``validate_choice`` is off so an
    #: unknown zone gets the Japanese message of ``routes.settings`` rather than WTForms' English one.
    timezone = SelectField(_l("タイムゾーン"), validate_choice=False,
                           validators=[DataRequired(_l("タイムゾーンを選んでください。"))])


class ChangePasswordForm(FlaskForm):
    """The password section: the current password, then the new one twice."""

    #: Set by the view: the account's address, which is not a password either.
    account_email = None
    current_password = PasswordField(_l("現在のパスワード"), validators=[
        DataRequired(_l("現在のパスワードを入力してください。"))])
    password = new_password_field(_l("新しいパスワード（%(n)d文字以上）", n=passwords.MIN_LENGTH))
    confirm = confirm_field(_l("新しいパスワード（確認）"))


class ProfileForm(FlaskForm):
    """What guests see of the host: the name on every guest page and email, and a short introduction."""

    display_name = StringField(_l("ホスト名（予約者に表示されます）"), validators=[
        DataRequired(_l("ホスト名を入力してください。")), SingleLine(),
        Length(max=DISPLAY_NAME_MAX, message=_l("ホスト名は80文字以内で入力してください。"))])
    bio = TextAreaField(_l("自己紹介（任意）"), validators=[
        Length(max=BIO_MAX, message=_l("自己紹介は%(max)d文字以内で入力してください。", max=BIO_MAX))])


class PhotoForm(FlaskForm):
    """The profile photo: any JPEG, PNG or WebP; ``app.account.profile`` checks and re-encodes it."""

    photo = FileField(_l("プロフィール写真（任意）"), validators=[FileRequired(_l("写真のファイルを選んでください。"))])
