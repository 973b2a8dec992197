"""Account settings pages. Views stay thin: validate, call one function (``zones``, ``accounts``), redirect."""
from flask import abort, current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import force_locale, get_locale, gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.account import bp, closing, preferences, profile, zones
from app.account.forms import (AccountSettingsForm, ChangePasswordForm, CloseAccountForm, ContactForm,
                               EmailChangeForm, NotificationsForm, PhotoForm, ProfileForm)
from app.auth import accounts
from app.extensions import begin_write, db, locks_when_writing, reads_only
from app.forms import EmptyForm

#: How long browsers and proxies keep a photo: its URL changes with its content.
PHOTO_CACHE_SECONDS = 365 * 24 * 3600


def _page(settings_form=None, password_form=None, profile_form=None, photo_form=None, contact_form=None,
          notifications_form=None, email_form=None, status: int = 200):
    """The settings page with its forms (each keeps what was typed into it, passwords aside)."""
    settings_form = settings_form or AccountSettingsForm(obj=current_user, formdata=None)
    settings_form.timezone.choices = zones.choices(str(get_locale() or "ja"), current=current_user.timezone)
    password_form = password_form or ChangePasswordForm(formdata=None)
    return make_response(render_template(
        "account/settings.html", form=settings_form, password_form=password_form,
        profile_form=profile_form or ProfileForm(obj=current_user, formdata=None),
        photo_form=photo_form or PhotoForm(formdata=None), remove_photo_form=EmptyForm(formdata=None),
        contact_form=contact_form or ContactForm(obj=current_user, formdata=None),
        notifications_form=notifications_form or NotificationsForm(obj=current_user, formdata=None),
        email_form=email_form or EmailChangeForm(formdata=None)), status)


def _password_throttled(form, throttled: accounts.LoginThrottled, render):
    """The form again, 429: too many wrong passwords lately."""
    flash(_("パスワードの誤りが続いたため、しばらく変更できません。%(minutes)d分ほど待ってから、もう一度お試しください。",
            minutes=throttled.wait_minutes), "error")
    return render(status=429)


@bp.url_value_preprocessor
def _photo_upload_limit(endpoint, values):
    """A photo from a phone is a few MB: its route reads more than the 1 MB every other form may send.

    Set here because URL value preprocessors run before any ``before_request`` hook (CSRF reads
    the form, so the body's size limit must be known by then).
    """
    if endpoint == "account.upload_photo":
        request.max_content_length = profile.PHOTO_UPLOAD_MAX + 64 * 1024  # the form's other fields


@bp.route("/settings/account/profile", methods=["POST"])
@login_required
def save_profile():
    """The name and introduction guests see on the booking pages and in their emails."""
    form = ProfileForm()
    if form.validate_on_submit():
        profile.set_profile(current_user, form.display_name.data, form.bio.data)
        db.session.commit()
        flash(_("プロフィールを保存しました。予約ページとメールに表示されます。"), "success")
        return redirect(url_for("account.settings") + "#profile")
    return _page(profile_form=form)


@bp.route("/settings/account/photo", methods=["POST"])
@login_required
@locks_when_writing  # decoding and re-encoding the image takes a moment: not while holding the lock
def upload_photo():
    """Replace the profile photo with an uploaded image, re-encoded small and without metadata."""
    form = PhotoForm()
    if form.validate_on_submit():
        try:
            jpeg = profile.photo_jpeg(form.photo.data.read(profile.PHOTO_UPLOAD_MAX + 1))
        except profile.NotAPhoto as refused:
            form.photo.errors.append(
                _("写真のファイルが大きすぎます。8MBまでの画像を選んでください。") if refused.too_large else
                _("この写真は使えません。JPEG・PNG・WebP形式の画像を選んでください。"))
        else:
            begin_write()
            profile.set_photo(current_user, jpeg)
            db.session.commit()
            flash(_("プロフィール写真を保存しました。"), "success")
            return redirect(url_for("account.settings") + "#profile")
    return _page(photo_form=form)


@bp.route("/settings/account/photo/remove", methods=["POST"])
@login_required
def remove_photo():
    """Guests see the host's name without a photo again."""
    if EmptyForm().validate_on_submit():
        profile.remove_photo(current_user)
        db.session.commit()
        flash(_("プロフィール写真を削除しました。"), "success")
    return redirect(url_for("account.settings") + "#profile")


@bp.route("/photos/<digest>.jpg")
@reads_only
def photo(digest):
    """A host's profile photo, public (guest pages show it) and cached for good (see ``PHOTO_CACHE_SECONDS``)."""
    jpeg = profile.photo_for(digest)
    if jpeg is None:
        abort(404)
    response = make_response(jpeg)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["Cache-Control"] = f"public, max-age={PHOTO_CACHE_SECONDS}, immutable"
    response.set_etag(digest)
    return response.make_conditional(request)


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
        try:
            preferences.set_language(current_user, form.locale.data)
        except preferences.UnknownLanguage:
            form.locale.errors.append(_("この言語は選べません。一覧から選んでください。"))
        if not form.errors:
            db.session.commit()
            # The message in the language just chosen, as the page it lands on.
            with force_locale(current_user.locale):
                flash(_("アカウント設定を保存しました。"), "success")
            return redirect(url_for("account.settings"))
        db.session.rollback()  # neither is saved: the page shows the saved ones beside the error
    if form.timezone.errors:
        form.timezone.data = current_user.timezone  # the saved zone stays chosen, next to the error
    if form.locale.errors:
        form.locale.data = current_user.locale
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


@bp.route("/settings/account/contact", methods=["POST"])
@login_required
def save_contact():
    """The address guests' replies go to (``Reply-To``), and whether the booking pages show it."""
    form = ContactForm()
    if form.validate_on_submit():
        preferences.set_contact(current_user, form.contact_email.data, form.show_contact_publicly.data)
        db.session.commit()
        flash(_("連絡先メールアドレスを保存しました。予約者からの返信は %(email)s に届きます。",
                email=current_user.reply_to), "success")
        return redirect(url_for("account.settings") + "#contact")
    return _page(contact_form=form)


@bp.route("/settings/account/notifications", methods=["POST"])
@login_required
def save_notifications():
    """Which emails about bookings the host receives."""
    form = NotificationsForm()
    if form.validate_on_submit():
        preferences.set_notifications(current_user, form.notify_bookings.data, form.notify_cancellations.data,
                                      form.notify_digest.data)
        db.session.commit()
        flash(_("通知の設定を保存しました。"), "success")
        return redirect(url_for("account.settings") + "#notifications")
    return _page(notifications_form=form)


@bp.route("/settings/account/email", methods=["POST"])
@login_required
@locks_when_writing  # the password is checked before the write lock is taken
def change_email():
    """Ask to log in with another address: a link goes to it; the login changes once it is followed."""
    form = EmailChangeForm()
    if form.validate_on_submit():
        try:
            new = accounts.request_email_change(current_user, form.email_password.data, form.new_email.data,
                                                request.remote_addr)
        except accounts.LoginThrottled as throttled:
            return _password_throttled(form, throttled, lambda status: _page(email_form=form, status=status))
        except accounts.WrongPassword:
            form.email_password.errors.append(_("現在のパスワードが正しくありません。"))
        except accounts.SameEmail:
            form.new_email.errors.append(_("現在のログイン用メールアドレスと同じです。"))
        else:
            db.session.commit()
            # The same words whether or not another account uses the address (it is never revealed).
            flash(_("%(email)s に確認メールをお送りしました。メール内のリンクを開くと変更が完了します（有効期限%(hours)d時間）。"
                    "それまでは、これまでのメールアドレスでログインしてください。",
                    email=new, hours=accounts.email_change_max_age() // 3600), "success")
            return redirect(url_for("account.settings") + "#email")
    return _page(email_form=form)


@bp.route("/settings/account/email/confirm", methods=["GET", "POST"])
def confirm_email_change():
    """The link of the email-change email (``?token=``). GET only asks (mail scanners open links); POST changes."""
    token = request.args.get("token", "")
    found = accounts.email_change_for_token(token)
    own = current_user.is_authenticated and found is not None and current_user.id == found[0].id
    if found is None:
        flash(_("このリンクは無効か、有効期限が切れています。アカウント設定から、もう一度お手続きください。"), "error")
        return redirect(url_for("account.settings") if current_user.is_authenticated else url_for("auth.login"))
    user, new = found
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            accounts.change_email(user, new)
        except accounts.EmailChangeFailed:
            db.session.rollback()
            flash(_("%(email)s はすでに別のアカウントで使われているため、変更できませんでした。", email=new), "error")
        else:
            db.session.commit()
            flash(_("ログイン用メールアドレスを %(email)s に変更しました。次回からはこのメールアドレスでログインしてください。",
                    email=new), "success")
        return redirect(url_for("account.settings") + "#email" if own else url_for("auth.login"))
    return render_template("account/confirm_email.html", form=form, email=new)


@bp.route("/settings/account/close", methods=["GET", "POST"])
@login_required
@locks_when_writing  # the password is checked, then the tools are called, before each write takes the lock
def close_account():
    """「アカウントを削除」: GET shows what it does (the future bookings, the guests emailed, the tools
    turned off); POST, with the password, does it and shows what was done."""
    form = CloseAccountForm()
    if form.validate_on_submit():
        try:
            closing.check_password(current_user, form.current_password.data, request.remote_addr)
        except accounts.LoginThrottled as throttled:
            return _password_throttled(form, throttled, lambda status: _close_page(form, status))
        except accounts.WrongPassword:
            form.current_password.errors.append(_("現在のパスワードが正しくありません。"))
        else:
            done = closing.close(current_user)
            logout_user()
            session.clear()
            return render_template("account/closed.html", done=done)
    return _close_page(form)


def _close_page(form, status: int = 200):
    return make_response(render_template("account/close.html", form=form, impact=closing.impact(current_user)),
                         status)
