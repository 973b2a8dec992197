"""The pages every video tool shares: what OFF would do and OFF itself, and issuing URLs for the
bookings made before linking. ``/settings/<tool>/…``, the tool's key in the address."""
from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.extensions import db
from app.forms import EmptyForm
from app.meetings import bp, planning, switch, withdraw
from app.meetings.timing import URL_LEAD_HOURS
from app.meetings.tools import all_tools


def _tool_or_404(tool_key: str):
    tool = next((t for t in all_tools() if t.key == tool_key), None)
    if tool is None:
        abort(404)
    return tool


@bp.route("/settings/<tool_key>/off", methods=["GET", "POST"])
@login_required
def turn_off(tool_key):
    """GET shows what OFF would do; POST does it."""
    tool = _tool_or_404(tool_key)
    if tool.link_for(current_user.id) is None:
        flash(_("%(tool)s連携はすでにOFFです。", tool=tool.name), "info")
        return redirect(url_for(tool.settings_endpoint))
    form = EmptyForm()
    if form.validate_on_submit():
        affected = switch.affected_slots_by_service(switch.upcoming_bookings(current_user, tool))
        # Read before OFF: the guests who hold a URL get the prefilled 「参加URL変更のお知らせ」.
        url_holders = switch.affected_slots_by_service(
            [b for b, _sent in switch.off_impact(current_user, tool).url_sent])
        result = withdraw.turn_off(current_user, tool)
        return render_template("meetings/off_done.html", tool=tool, result=result, affected=affected,
                               url_holders=url_holders)
    return render_template("meetings/off_confirm.html", tool=tool, impact=switch.off_impact(current_user, tool),
                           form=form)


@bp.route("/settings/<tool_key>/backfill", methods=["POST"])
@login_required
def backfill(tool_key):
    """Also issue URLs for the upcoming bookings made before linking (explicit, never default)."""
    tool = _tool_or_404(tool_key)
    found = tool.link_for(current_user.id)
    if found is None or not EmptyForm().validate_on_submit():
        abort(400)
    planned = planning.backfill(found, switch.bookings_before_link(found, tool))
    db.session.commit()
    flash(_("%(n)d件のご予約にも%(tool)sのURLを発行し、開催%(hours)d時間前にお送りします。", n=planned, tool=tool.name,
            hours=URL_LEAD_HOURS), "success")
    return redirect(url_for(tool.settings_endpoint))
