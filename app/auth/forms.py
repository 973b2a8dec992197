"""Account forms (labels and messages in Japanese; translatable)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from app.auth import passwords
from app.forms import SingleLine


class StrongPassword:
    """The password rule of ``app.auth.passwords``: long enough, not a common one, not the email.

    The email compared is the form's ``email`` field, or ``account_email`` set by the view.
    """

    def __call__(self, form, field):
        email = getattr(form, "account_email", None) or (form.email.data if hasattr(form, "email") else None)
        problem = passwords.weakness(field.data or "", email)
        if problem:
            raise ValidationError(problem)


def new_password_field(label):
    """A new password: required, and ``StrongPassword``."""
    return PasswordField(label, validators=[DataRequired(_l("パスワードを入力してください。")), StrongPassword()])


def confirm_field(label):
    """The new password typed again."""
    return PasswordField(label, validators=[EqualTo("password", _l("パスワードが一致しません。"))])


class SignupForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False),
        Length(max=254)])
    display_name = StringField(_l("ホスト名（予約者に表示されます）"), validators=[
        DataRequired(_l("ホスト名を入力してください。")), SingleLine(),
        Length(max=80, message=_l("ホスト名は80文字以内で入力してください。"))])
    password = new_password_field(_l("パスワード（%(n)d文字以上）", n=passwords.MIN_LENGTH))
    confirm = confirm_field(_l("パスワード（確認）"))


class LoginForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[DataRequired(_l("メールアドレスを入力してください。"))])
    password = PasswordField(_l("パスワード"), validators=[DataRequired(_l("パスワードを入力してください。"))])
    remember = BooleanField(_l("ログインしたままにする"))


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False)])


class ResetPasswordForm(FlaskForm):
    #: Set by the view: the account's address, which is not a password either.
    account_email = None
    password = new_password_field(_l("新しいパスワード（%(n)d文字以上）", n=passwords.MIN_LENGTH))
    confirm = confirm_field(_l("新しいパスワード（確認）"))


class TotpForm(FlaskForm):
    """A six-digit code from the authenticator app (login and enrolment)."""

    code = StringField(_l("確認コード（6桁）"), validators=[
        DataRequired(_l("認証アプリに表示されている6桁のコードを入力してください。")),
        Length(max=12)])
