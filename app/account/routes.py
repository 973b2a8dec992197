"""Account settings pages. Views stay thin: validate, call one function in ``zones``, redirect."""
from flask import flash, redirect, render_template, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user, login_required

from app.account import bp, zones
from app.account.forms import AccountSettingsForm
from app.extensions import db, reads_only


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
    return render_template("account/settings.html", form=form)
