"""The account settings forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional

from app.account.preferences import LANGUAGES
from app.account.profile import BIO_MAX, DISPLAY_NAME_MAX
from app.auth import passwords
from app.auth.forms import confirm_field, new_password_field
from app.forms import SingleLine


class AccountSettingsForm(FlaskForm):
    #: Choices are set per request (in the reader's language); ``validate_choice`` is off so an
    #: unknown zone gets the Japanese message of ``routes.settings`` rather than WTForms' English one.
    timezone = SelectField(_l("タイムゾーン"), validate_choice=False,
                           validators=[DataRequired(_l("タイムゾーンを選んでください。"))])
    #: ``validate_choice`` off for the same reason: ``routes.settings`` says it in Japanese.
    locale = SelectField(_l("表示言語"), choices=LANGUAGES, validate_choice=False,
                         validators=[DataRequired(_l("表示言語を選んでください。"))])


def _password_field():
    """The current password, re-entered before a change that a stolen session must not make alone."""
    return PasswordField(_l("現在のパスワード"), validators=[DataRequired(_l("現在のパスワードを入力してください。"))])


def _email_validators(required: bool):
    return [DataRequired(_l("メールアドレスを入力してください。")) if required else Optional(),
            Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False),
            Length(max=254, message=_l("メールアドレスは254文字以内で入力してください。"))]


def _stripped(value):
    """Spaces around a pasted address are not part of it."""
    return value.strip() if isinstance(value, str) else value


class ContactForm(FlaskForm):
    """Where guests' replies go (the login address when empty), and whether guests see it before booking."""

    contact_email = EmailField(_l("連絡先メールアドレス（任意）"), validators=_email_validators(required=False),
                               filters=[_stripped])
    show_contact_publicly = BooleanField(_l("予約ページにも連絡先メールアドレスを表示する"))


class NotificationsForm(FlaskForm):
    """The host notices: each kind on or off, or one hourly digest instead."""

    notify_bookings = BooleanField(_l("新しいご予約があったとき"))
    notify_cancellations = BooleanField(_l("ご予約がキャンセルされたとき"))
    notify_digest = BooleanField(_l("1件ずつではなく、1時間ごとにまとめて受け取る"))


class EmailChangeForm(FlaskForm):
    """A new login address (confirmed by a link mailed to it) and the current password."""

    new_email = EmailField(_l("新しいメールアドレス"), validators=_email_validators(required=True),
                           filters=[_stripped])
    #: Not ``current_password``: the password section's field on the same page has that id.
    email_password = _password_field()


class CloseAccountForm(FlaskForm):
    """The password, re-entered to close the account."""

    current_password = _password_field()


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
