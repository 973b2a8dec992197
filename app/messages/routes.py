"""Bulk message pages: composer with preview, list, progress, and per-recipient status."""
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user, login_required

from app import clock
from app.extensions import db, reads_only
from app.forms import EmptyForm
from app.mail.render import render_kind
from app.messages import bp, bulk
from app.messages.forms import MessageForm
from app.models import Message, MessageStatus
from app.services.catalog import get_own_service_or_404, host_services


def _own_message_or_404(message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None or message.host_id != current_user.id:
        abort(404)
    return message


def _scheduled_at(form: MessageForm):
    if form.send_mode.data == "schedule" and form.scheduled_at.data:
        return clock.local_to_utc(form.scheduled_at.data, current_user.timezone)
    return None


def _preview(service, form: MessageForm) -> dict:
    """Recipients and the email rendered for the first of them (nothing is saved)."""
    recipients = bulk.audience(service, form.slot_ids.data or [], form.all_upcoming.data)
    unknown = bulk.unknown_placeholders(form.subject.data or "", form.body.data or "")
    rendered = None
    if recipients and not unknown and form.subject.data and form.body.data:
        draft = Message(subject=form.subject.data, body=form.body.data)
        rendered = render_kind("bulk_message", bulk.message_context(draft, recipients[0]), "ja")
    return {"recipients": recipients, "unknown": unknown, "rendered": rendered}


def _compose_page(form, service, message=None, preview=None):
    # The send time is read in the host's zone (``_scheduled_at``): the label says which.
    form.scheduled_at.label.text = _("送信日時（%(zone)s）", zone=clock.zone_label(current_user.timezone,
                                                                                  str(get_locale())))
    services = host_services(current_user)
    slots = bulk.upcoming_slots(service) if service else []
    if service:
        form.slot_ids.choices = [(s.id, str(s.id)) for s in slots]
    return render_template("messages/compose.html", form=form, service=service, services=services, slots=slots,
                           message=message, preview=preview or (_preview(service, form) if service else None),
                           placeholders=bulk.PLACEHOLDERS)


@bp.route("/messages")
@login_required
@reads_only
def index():
    messages = db.session.query(Message).filter_by(host_id=current_user.id).order_by(Message.id.desc()).all()
    return render_template("messages/index.html", messages=messages, progress=bulk.progress)


@bp.route("/messages/new", methods=["GET", "POST"])
@login_required
def compose():
    """Compose; ``?service_id=&slot_ids=&template=`` prefill (e.g. from the Zoom OFF page): only the
    service's own upcoming slots are chosen, and ``template`` names one of ``bulk.PREFILLS``."""
    service_id = request.values.get("service_id", type=int)
    service = get_own_service_or_404(service_id, current_user) if service_id else None
    form = MessageForm()
    if request.method == "GET":
        if service is not None:
            form.slot_ids.data = bulk.upcoming_slot_ids(service, request.args.getlist("slot_ids", type=int))
        prefilled = bulk.prefill(request.args.get("template"))
        if prefilled is not None:
            form.subject.data, form.body.data = prefilled
    if service is not None and form.validate_on_submit():
        if request.form.get("action") == "send":
            try:
                message = bulk.compose(current_user, service, slot_ids=form.slot_ids.data or [],
                                       all_upcoming=form.all_upcoming.data, subject=form.subject.data,
                                       body=form.body.data, scheduled_at=_scheduled_at(form))
            except bulk.MessageError as exc:
                flash(str(exc), "error")
            else:
                flash(_("メッセージを予約しました。") if message.status == MessageStatus.SCHEDULED
                      else _("メッセージの送信を開始しました。"), "success")
                return redirect(url_for("messages.detail", message_id=message.id))
    return _compose_page(form, service)


@bp.route("/messages/<int:message_id>")
@login_required
@reads_only
def detail(message_id):
    message = _own_message_or_404(message_id)
    return render_template("messages/detail.html", message=message, progress=bulk.progress(message),
                           recipients=bulk.recipients(message), action_form=EmptyForm())


@bp.route("/messages/<int:message_id>/progress.json")
@login_required
@reads_only
def progress(message_id):
    """Polled by the progress bar while the message is being sent."""
    message = _own_message_or_404(message_id)
    p = bulk.progress(message)
    return jsonify(status=message.status.value, total=p.total, sent=p.sent, failed=p.failed, done=p.done,
                   percent=p.percent)


@bp.route("/messages/<int:message_id>/edit", methods=["GET", "POST"])
@login_required
def edit(message_id):
    message = _own_message_or_404(message_id)
    if message.status not in (MessageStatus.SCHEDULED, MessageStatus.HELD):
        flash(_("送信が始まったメッセージは編集できません。"), "error")
        return redirect(url_for("messages.detail", message_id=message.id))
    form = MessageForm(obj=message)
    if not form.is_submitted():
        form.send_mode.data = "schedule"
        form.scheduled_at.data = clock.to_local(message.scheduled_at, current_user.timezone).replace(tzinfo=None)
    if form.validate_on_submit() and request.form.get("action") == "send":
        try:
            bulk.edit(message, current_user, slot_ids=form.slot_ids.data or [], all_upcoming=form.all_upcoming.data,
                      subject=form.subject.data, body=form.body.data,
                      scheduled_at=_scheduled_at(form))
        except bulk.MessageError as exc:
            flash(str(exc), "error")
        else:
            flash(_("メッセージを保存しました。"), "success")
            return redirect(url_for("messages.detail", message_id=message.id))
    return _compose_page(form, message.service, message=message)


def _post_action(message_id, action, done_message):
    message = _own_message_or_404(message_id)
    if EmptyForm().validate_on_submit():
        try:
            result = action(message)
        except bulk.MessageError as exc:
            flash(str(exc), "error")
        else:
            flash(done_message(result), "success")
    return redirect(url_for("messages.detail", message_id=message_id))


@bp.route("/messages/<int:message_id>/cancel", methods=["POST"])
@login_required
def cancel(message_id):
    return _post_action(message_id, bulk.cancel, lambda _r: _("メッセージを取り消しました。"))


@bp.route("/messages/<int:message_id>/resend-failed", methods=["POST"])
@login_required
def resend_failed(message_id):
    return _post_action(message_id, bulk.resend_failed, lambda n: _("送信に失敗した%(n)d件を再送します。", n=n))


@bp.route("/messages/<int:message_id>/release", methods=["POST"])
@login_required
def release(message_id):
    return _post_action(message_id, bulk.release, lambda n: _("開催予定の予約者%(n)d名に送信します。", n=n))
