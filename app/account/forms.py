"""The account settings forms."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField
from wtforms.validators import DataRequired

from app.auth import passwords
from app.auth.forms import confirm_field, new_password_field


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
