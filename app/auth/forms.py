"""Account forms (labels and messages in Japanese; translatable)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from app.forms import SingleLine

PASSWORD_MIN = 8


class SignupForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False),
        Length(max=254)])
    display_name = StringField(_l("ホスト名（予約者に表示されます）"), validators=[
        DataRequired(_l("ホスト名を入力してください。")), SingleLine(),
        Length(max=80, message=_l("ホスト名は80文字以内で入力してください。"))])
    password = PasswordField(_l("パスワード（8文字以上）"), validators=[
        DataRequired(_l("パスワードを入力してください。")),
        Length(min=PASSWORD_MIN, max=128, message=_l("パスワードは8文字以上128文字以内で入力してください。"))])
    confirm = PasswordField(_l("パスワード（確認）"), validators=[
        EqualTo("password", _l("パスワードが一致しません。"))])


class LoginForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[DataRequired(_l("メールアドレスを入力してください。"))])
    password = PasswordField(_l("パスワード"), validators=[DataRequired(_l("パスワードを入力してください。"))])
    remember = BooleanField(_l("ログインしたままにする"))


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[
        DataRequired(_l("メールアドレスを入力してください。")),
        Email(_l("メールアドレスの形式が正しくありません。"), allow_smtputf8=False)])


class ResetPasswordForm(FlaskForm):
    password = PasswordField(_l("新しいパスワード（8文字以上）"), validators=[
        DataRequired(_l("パスワードを入力してください。")),
        Length(min=PASSWORD_MIN, max=128, message=_l("パスワードは8文字以上128文字以内で入力してください。"))])
    confirm = PasswordField(_l("新しいパスワード（確認）"), validators=[
        EqualTo("password", _l("パスワードが一致しません。"))])
