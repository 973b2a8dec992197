"""Account pages. Views stay thin: validate, call one function in ``accounts`` (or ``totp``), redirect.

Also the session rules every request follows (``_session_limits``): an idle timeout, and staff
who have not given their second factor in this session are logged out.
"""
from urllib.parse import urlsplit

from flask import current_app, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import (current_user, login_required, login_url, login_user, logout_user,
                         user_loaded_from_cookie)

from app import clock
from app.auth import accounts, bp, totp
from app.auth.forms import LoginForm, ResetPasswordForm, ResetRequestForm, SignupForm, TotpForm
from app.extensions import db, locks_when_writing, login_manager
from app.forms import EmptyForm
from app.limits import limiter

#: Session keys: when this session last made a request (``app.clock`` seconds), whether it gave
#: the second factor, the login waiting for its code, and the address a signup was sent to.
SEEN = "_seen"
SECOND_FACTOR = "_second_factor"
PENDING_LOGIN = "_pending_login"
SIGNUP_EMAIL = "_signup_email"
#: ``_seen`` is rewritten at most this often (seconds): not a new cookie on every request.
_SEEN_RESOLUTION = 60


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect).

    Control characters are refused outright: browsers drop a tab, so ``/<TAB>/evil`` would
    become ``//evil``, and CR/LF must never reach a header.
    """
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in target)):
        return _home()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return _home()
    return target


def _home() -> str:
    """Where a login lands: staff on their home, hosts on their dashboard."""
    return url_for("staff.index" if current_user.is_authenticated and current_user.is_staff else "dashboard.home")


def _now() -> float:
    return clock.now().timestamp()


def _start_session(user, remember: bool = False, second_factor: bool = False) -> None:
    # A new session at login: nothing from before it (a fixation attempt) survives.
    session.clear()
    login_user(user, remember=remember)
    session[SEEN] = _now()
    if second_factor:
        session[SECOND_FACTOR] = True


def _throttled(template: str, throttled: accounts.LoginThrottled, **context):
    """The form again, 429, saying how long to wait."""
    flash(_("ログインの失敗が続いたため、しばらくログインできません。%(minutes)d分ほど待ってから、もう一度お試しください。"
            "パスワードをお忘れの場合は、「パスワードをお忘れの方」から再設定できます。",
            minutes=throttled.wait_minutes), "error")
    response = make_response(render_template(template, **context), 429)
    response.headers["Retry-After"] = str(throttled.wait_seconds)
    return response


# --- the rules of every session --------------------------------------------------------------------------

@bp.before_app_request
def _session_limits():
    """Log out a session idle for ``SESSION_IDLE_MINUTES`` (a remember-me cookie still logs it back
    in, as it always did), and a staff session without its second factor when one is required."""
    if request.endpoint == "static":
        return
    if "_user_id" in session:
        now, seen = _now(), session.get(SEEN)
        if seen is not None and now - seen > current_app.config["SESSION_IDLE_MINUTES"] * 60:
            # ``_id`` stays: without it Flask-Login's strong protection would also drop the remember cookie.
            for key in ("_user_id", "_fresh", SECOND_FACTOR):
                session.pop(key, None)
            g.logged_out_because = "idle"
        elif seen is None or now - seen >= _SEEN_RESOLUTION:
            session[SEEN] = now
    remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    if (current_app.config["STAFF_REQUIRE_TOTP"] and not session.get(SECOND_FACTOR)
            and ("_user_id" in session or remembered)
            and current_user.is_authenticated and totp.required(current_user)):
        logout_user()  # also clears a remember-me cookie: it cannot carry the second factor
        g.logged_out_because = "second_factor"


@user_loaded_from_cookie.connect
def _remembered(sender, user=None, **extra):
    """A session restored from the remember-me cookie is bound to this browser as a login's is.

    Flask-Login leaves its ``_id`` unset, so strong session protection wiped the restored session
    (and the remember cookie) on the very next request (maxcountryman/flask-login#248, #685).
    """
    session["_id"] = login_manager._session_identifier_generator()
    session[SEEN] = _now()


@login_manager.unauthorized_handler
def _ask_to_log_in():
    """Flask-Login's redirect to the login page, saying why when the session just ended."""
    why = g.get("logged_out_because")
    if why == "idle":
        message = _("一定時間操作がなかったため、ログアウトしました。もう一度ログインしてください。")
    elif why == "second_factor":
        message = _("運営スタッフのアカウントは、確認コードの入力が必要です。もう一度ログインしてください。")
    else:
        message = _("ログインしてください。")
    flash(message, "info")
    return redirect(login_url("auth.login", request.url))


@bp.app_context_processor
def _email_banner():
    """Every page of a host who has not confirmed their email says so (base.html)."""
    if current_user and current_user.is_authenticated and not current_user.email_verified:
        return {"verify_email_banner": True}
    return {}


# --- signing up, confirming the address ----------------------------------------------------------------

@bp.route("/signup", methods=["GET", "POST"])
@locks_when_writing  # the password is hashed before the write lock is taken
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = SignupForm()
    if form.validate_on_submit():
        # The same answer whether the address is new or already registered (its owner gets an email).
        accounts.sign_up(form.email.data, form.display_name.data, form.password.data)
        db.session.commit()
        session[SIGNUP_EMAIL] = accounts.normalize_email(form.email.data)
        return redirect(url_for("auth.signup_sent"))
    return render_template("auth/signup.html", form=form)


@bp.route("/signup/sent")
def signup_sent():
    """After signing up: check your mailbox (and you can log in meanwhile)."""
    email = session.get(SIGNUP_EMAIL)
    if not email:
        return redirect(url_for("auth.signup"))
    return render_template("auth/signup_sent.html", email=email,
                           valid_days=current_app.config["EMAIL_VERIFY_MAX_AGE"] // 86400)


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify_email(token):
    """The link of the confirmation email. GET only asks (mail scanners open links); the POST confirms."""
    user = accounts.user_for_verify_token(token)
    if user is None:
        flash(_("この確認リンクは無効か、有効期限が切れています。ログインして、確認メールを再送してください。"), "error")
        return redirect(url_for("auth.login"))
    own = current_user.is_authenticated and current_user.id == user.id
    if user.email_verified:
        flash(_("このメールアドレスは確認済みです。"), "info")
        return redirect(url_for("dashboard.home") if own else url_for("auth.login"))
    form = EmptyForm()
    if form.validate_on_submit():
        accounts.verify_email(user)
        db.session.commit()
        flash(_("メールアドレスを確認しました。公開ページで予約を受け付けられるようになりました。"), "success")
        return redirect(url_for("dashboard.home") if own else url_for("auth.login"))
    return render_template("auth/verify_email.html", form=form, email=user.email)


@bp.route("/verify/resend", methods=["POST"])
@login_required
def resend_verification():
    """「確認メールを再送」 on the banner."""
    if EmptyForm().validate_on_submit():
        if current_user.email_verified:
            flash(_("このメールアドレスは確認済みです。"), "info")
        elif accounts.send_verification(current_user):
            db.session.commit()
            flash(_("確認メールを %(email)s にお送りしました。メール内のリンクを開いてください。",
                    email=current_user.email), "success")
        else:
            flash(_("確認メールは先ほどお送りしました。届くまで数分お待ちください。届かない場合は、迷惑メールフォルダもご確認ください。"),
                  "info")
    return redirect(url_for("dashboard.home"))


# --- logging in and out ----------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
@locks_when_writing  # logging in writes nothing; the hash check must not hold the write lock
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, request.remote_addr)
        except accounts.LoginThrottled as throttled:
            return _throttled("auth/login.html", throttled, form=form)
        if user is None:
            flash(_("メールアドレスまたはパスワードが正しくありません。"), "error")
        elif totp.required(user):
            # Not logged in yet: the session only remembers who is waiting for their code.
            next_url = _safe_next(request.args.get("next"))
            session.clear()
            session[PENDING_LOGIN] = {"token": user.session_token, "remember": bool(form.remember.data),
                                      "next": next_url, "at": _now()}
            return redirect(url_for("auth.login_code"))
        else:
            _start_session(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


def _pending_user():
    """The staff member whose password was right a moment ago and who still owes the code, if any."""
    pending = session.get(PENDING_LOGIN)
    if not pending or _now() - pending["at"] > current_app.config["TOTP_ENROLMENT_SECONDS"]:
        return None
    return accounts.load_user(pending["token"])


def _finish_second_factor(user):
    pending = session[PENDING_LOGIN]
    _start_session(user, remember=pending["remember"], second_factor=True)
    return redirect(pending["next"])


def _log_in_again():
    session.pop(PENDING_LOGIN, None)
    flash(_("時間が経ったため、もう一度ログインしてください。"), "info")
    return redirect(url_for("auth.login"))


@bp.route("/login/code", methods=["GET", "POST"])
@locks_when_writing  # takes the lock itself, once the code is right
def login_code():
    """The second step of a staff login: the code from the authenticator app."""
    user = _pending_user()
    if user is None:
        return _log_in_again()
    if not totp.is_enrolled(user):
        return redirect(url_for("auth.login_code_setup"))
    form = TotpForm()
    if form.validate_on_submit():
        try:
            user = totp.verify(user, form.code.data, request.remote_addr)
        except accounts.LoginThrottled as throttled:
            return _throttled("auth/login_code.html", throttled, form=form)
        except totp.WrongCode:
            form.code.errors.append(_("確認コードが正しくありません。認証アプリに表示されている最新のコードを入力してください。"))
        else:
            db.session.commit()
            return _finish_second_factor(user)
    return render_template("auth/login_code.html", form=form)


@bp.route("/login/code/setup", methods=["GET", "POST"])
@locks_when_writing  # takes the lock itself, once the code is right
def login_code_setup():
    """A staff member's first login where a second factor is required: add this account to an
    authenticator app (QR code or the secret typed in), then prove it with a code."""
    user = _pending_user()
    if user is None:
        return _log_in_again()
    if totp.is_enrolled(user):
        return redirect(url_for("auth.login_code"))
    secret = totp.pending_secret(user)
    form = TotpForm()
    if form.validate_on_submit():
        try:
            user = totp.enrol(user, form.code.data, request.remote_addr)
        except accounts.LoginThrottled as throttled:
            return _throttled("auth/login_code_setup.html", throttled, form=form, secret=totp.grouped(secret),
                              qr=totp.qr_data_uri(totp.provisioning_uri(user, secret)))
        except totp.WrongCode:
            form.code.errors.append(_("確認コードが正しくありません。QRコードを読み取った認証アプリに表示されている最新のコードを入力してください。"))
        else:
            db.session.commit()
            flash(_("2段階認証を設定しました。次回からは、パスワードの後に認証アプリの確認コードを入力してください。"), "success")
            return _finish_second_factor(user)
    return render_template("auth/login_code_setup.html", form=form, secret=totp.grouped(secret),
                           qr=totp.qr_data_uri(totp.provisioning_uri(user, secret)))


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


# --- a forgotten password -----------------------------------------------------------------------------

@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RESET_REQUEST_LIMIT"], methods=["POST"])
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
    form.account_email = user.email
    if form.validate_on_submit():
        accounts.reset_password(user, form.password.data, request.remote_addr)
        db.session.commit()
        flash(_("パスワードを変更しました。新しいパスワードでログインしてください。"), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form)
