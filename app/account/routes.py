"""Account settings pages. Views stay thin: validate, call one function (``zones``, ``accounts``), redirect."""
from flask import current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user, login_required, login_user

from app.account import bp, zones
from app.account.forms import AccountSettingsForm, ChangePasswordForm
from app.auth import accounts
from app.extensions import db, locks_when_writing, reads_only


def _page(settings_form=None, password_form=None, status: int = 200):
    """The settings page with both forms (each keeps what was typed into it, passwords aside)."""
    settings_form = settings_form or AccountSettingsForm(obj=current_user, formdata=None)
    settings_form.timezone.choices = zones.choices(str(get_locale() or "ja"), current=current_user.timezone)
    password_form = password_form or ChangePasswordForm(formdata=None)
    return make_response(render_template("account/settings.html", form=settings_form,
                                          password_form=password_form), status)


@bp.route("/settings/account", methods=["GET", "POST"])
@login_required
@reads_only
def settings():
    """The host's account settings: the time zone every host page shows and reads times in."""
    form = AccountSettingsForm(obj=current_user)
    form.timezone.choices = zones.choices(str(get_locale() or "ja"), current=current_user.timezone)
    if form.validate_on_submit():
        try:
            zones.set_timezone(current_user, form.timezone.data)
        except zones.UnknownZone:
            form.timezone.errors.append(_("このタイムゾーンは選べません。一覧から選んでください。"))
        else:
            db.session.commit()
            flash(_("アカウント設定を保存しました。"), "success")
            return redirect(url_for("account.settings"))
    if form.timezone.errors:
        form.timezone.data = current_user.timezone  # the saved zone stays chosen, next to the error
    return _page(settings_form=form)


@bp.route("/settings/account/password", methods=["POST"])
@login_required
@locks_when_writing  # the passwords are hashed before the write lock is taken
def change_password():
    """Change the password: every other session ends, this one stays, and a notice goes by email."""
    form = ChangePasswordForm()
    form.account_email = current_user.email
    if form.validate_on_submit():
        try:
            user = accounts.change_password(current_user, form.current_password.data, form.password.data,
                                            request.remote_addr)
        except accounts.LoginThrottled as throttled:
            flash(_("パスワードの誤りが続いたため、しばらく変更できません。%(minutes)d分ほど待ってから、もう一度お試しください。",
                    minutes=throttled.wait_minutes), "error")
            return _page(password_form=form, status=429)
        except accounts.WrongPassword:
            form.current_password.errors.append(_("現在のパスワードが正しくありません。"))
        else:
            db.session.commit()
            # The session token was rotated: this browser logs in again with the new one (and
            # keeps its remember-me cookie, renewed, if it had one).
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
            login_user(user, remember=remembered)
            flash(_("パスワードを変更しました。ほかの端末やブラウザでのログインはすべて終了しました。"), "success")
            return redirect(url_for("account.settings"))
    return _page(password_form=form)
