"""Account pages. Views stay thin: validate, call one function in ``accounts``, redirect."""
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import accounts, bp
from app.auth.forms import LoginForm, ResetPasswordForm, ResetRequestForm, SignupForm
from app.extensions import db, locks_when_writing
from app.forms import EmptyForm


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect).

    Control characters are refused outright: browsers drop a tab, so ``/<TAB>/evil`` would
    become ``//evil``, and CR/LF must never reach a header.
    """
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in target)):
        return url_for("dashboard.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("dashboard.home")
    return target


def _start_session(user, remember: bool = False) -> None:
    # A new session at login: nothing from before it (a fixation attempt) survives.
    session.clear()
    login_user(user, remember=remember)


@bp.route("/signup", methods=["GET", "POST"])
@locks_when_writing  # the password is hashed before the write lock is taken
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.display_name.data, form.password.data)
        except accounts.EmailTaken:
            form.email.errors.append(_("このメールアドレスはすでに登録されています。ログインするか、パスワードを再設定してください。"))
        else:
            db.session.commit()
            _start_session(user)
            flash(_("アカウントを作成しました。まずはサービスを作成しましょう。"), "success")
            return redirect(url_for("dashboard.home"))
    return render_template("auth/signup.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@locks_when_writing  # logging in writes nothing; the hash check must not hold the write lock
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, request.remote_addr)
        except accounts.LoginThrottled:
            flash(_("ログインの失敗が続いたため、しばらくログインできません。15分ほど待ってから再度お試しください。"), "error")
        else:
            if user is None:
                flash(_("メールアドレスまたはパスワードが正しくありません。"), "error")
            else:
                _start_session(user, remember=form.remember.data)
                return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    if EmptyForm().validate_on_submit():
        current_user.end_sessions()  # a copy of this session cookie must not outlive the logout
        db.session.commit()
        logout_user()
        session.clear()
        flash(_("ログアウトしました。"), "info")
    return redirect(url_for("auth.login"))


@bp.route("/reset", methods=["GET", "POST"])
def request_reset():
    form = ResetRequestForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data)
        db.session.commit()
        flash(_("ご登録のメールアドレスであれば、パスワード再設定のご案内をお送りしました。メールをご確認ください。"), "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_request.html", form=form)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@locks_when_writing  # the password is hashed before the write lock is taken
def reset_password(token):
    user = accounts.user_for_reset_token(token)
    if user is None:
        flash(_("このリンクは無効か、有効期限（1時間）が切れています。もう一度お手続きください。"), "error")
        return redirect(url_for("auth.request_reset"))
    form = ResetPasswordForm()
    if form.validate_on_submit():
        accounts.reset_password(user, form.password.data)
        db.session.commit()
        flash(_("パスワードを変更しました。新しいパスワードでログインしてください。"), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form)
