"""Bulk message pages: composer with preview, list, progress, and per-recipient status."""
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import force_locale, get_locale, gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup, escape

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


@bp.app_template_filter("placeholder_labels")
def placeholder_labels(text: str, plain: bool = False):
    """A message's subject or body with each placeholder shown as its label: 「［お名前］様へ」
    (``plain``, for ``<title>``), else the label in a ``span.ph-label``.

    A message goes to many guests, so its pages show it as written rather than as one guest's copy.
    """
    if plain:
        return "".join(f"［{part}］" if label else part for part, label in bulk.labelled_parts(text))
    return Markup("").join(Markup('<span class="ph-label">%s</span>') % part if label else escape(part)
                           for part, label in bulk.labelled_parts(text))


def _scheduled_at(form: MessageForm):
    if form.send_mode.data == "schedule" and form.scheduled_at.data:
        return clock.local_to_utc(form.scheduled_at.data, current_user.timezone)
    return None


#: Bulk emails are written in Japanese (``bulk.fan_out``): the preview shows what the guest reads.
GUEST_LOCALE = "ja"


def _preview(service, form: MessageForm, index: int = 0) -> dict:
    """Recipients, those without a join URL, and the email rendered for recipient ``index`` (nothing is saved)."""
    recipients = bulk.audience(service, form.slot_ids.data or [], form.all_upcoming.data, form.booking_ids.data)
    subject, body = form.subject.data or "", form.body.data or ""
    index = min(max(index, 0), max(len(recipients) - 1, 0))
    uses_link = bulk.uses_placeholder("zoom_link", subject, body)
    with force_locale(GUEST_LOCALE):
        no_url = bulk.without_join_url(recipients) if uses_link else []
    rendered = instead = None
    if recipients and subject and body and not bulk.unknown_placeholders(subject, body):
        draft = Message(subject=subject, body=body)
        with force_locale(GUEST_LOCALE):
            rendered = render_kind("bulk_message", bulk.message_context(draft, recipients[index]), GUEST_LOCALE)
        instead = next((group.instead for group in no_url if recipients[index] in group.bookings), None)
    return {"recipients": recipients, "index": index, "rendered": rendered, "no_url": no_url,
            "no_url_ids": {b.id for group in no_url for b in group.bookings}, "instead": instead}


def _summary(count: int, scheduled_at) -> str:
    """What pressing 送信 will do, in one sentence: 「4名に今すぐ送信します」, 「…10:00に4名へ送信します」."""
    if scheduled_at is None:
        return _("%(n)d名に今すぐ送信します", n=count)
    tz, locale = current_user.timezone, str(get_locale())
    when = clock.format_datetime_local(scheduled_at, tz, locale)
    if not clock.is_japan_time(tz):  # a time abroad is never shown without its zone
        when = f"{clock.zone_label(tz, locale)} {when}"
    return _("%(when)sに%(n)d名へ送信します", when=when, n=count)


def _compose_page(form, service, message=None, preview=None, confirm=None):
    # The send time is read in the host's zone (``_scheduled_at``): the label says which.
    form.scheduled_at.label.text = _("送信日時（%(zone)s）", zone=clock.zone_label(current_user.timezone,
                                                                                  str(get_locale())))
    services = host_services(current_user)
    slots = bulk.upcoming_slots(service) if service else []
    if service:
        form.slot_ids.choices = [(s.id, str(s.id)) for s in slots]
    index = request.form.get("preview_index", 0, type=int) if request.method == "POST" else 0
    return render_template("messages/compose.html", form=form, service=service, services=services, slots=slots,
                           message=message, preview=preview or (_preview(service, form, index) if service else None),
                           confirm=confirm, placeholders=bulk.PLACEHOLDERS, hints=bulk.PLACEHOLDER_HINTS)


def _step() -> str:
    """What a POST of the composer asks for: ``preview`` (also 前へ/次へ of the preview), ``confirm``,
    ``send``, or ``edit`` (「戻って直す」 on the confirmation)."""
    action = request.form.get("action")
    if action in ("preview", "confirm", "send", "edit"):
        return action
    # 前へ/次へ on the confirmation keep it (its form says ``step=confirm``).
    return "confirm" if request.form.get("step") == "confirm" else "preview"


def _composer(form: MessageForm, service, message: Message | None = None):
    """The composer's POST for a new message or an edited one: preview, confirm (asks once), send.

    Sending needs no JavaScript: the confirmation is a page of its own whose form carries the
    message in hidden fields. A send whose audience changed since the confirmation was shown asks again.
    """
    step = _step()
    if step == "edit":  # back to the form as it was, without errors
        return _compose_page(form, service, message=message)
    if not form.validate_on_submit() or step == "preview":
        return _compose_page(form, service, message=message)
    options = dict(slot_ids=form.slot_ids.data or [], all_upcoming=form.all_upcoming.data,
                   subject=form.subject.data, body=form.body.data, scheduled_at=_scheduled_at(form))
    guests = None if message is not None else form.booking_ids.data or None  # a saved message has no guest list
    try:
        recipients = bulk.check(current_user, service, options["slot_ids"], options["all_upcoming"],
                                options["subject"], options["body"], options["scheduled_at"], editing=message,
                                booking_ids=guests)
    except bulk.MessageError as exc:
        flash(str(exc), "error")
        return _compose_page(form, service, message=message)
    confirmed = request.form.get("confirmed_count", type=int)
    changed = step == "send" and confirmed is not None and confirmed != len(recipients)
    if step == "confirm" or changed:
        if changed:
            flash(_("確認の後に送信先が%(before)d名から%(after)d名に変わりました。もう一度ご確認ください。",
                    before=confirmed, after=len(recipients)), "error")
        confirm = {"count": len(recipients), "summary": _summary(len(recipients), options["scheduled_at"]),
                   "scheduled": options["scheduled_at"] is not None}
        return _compose_page(form, service, message=message, confirm=confirm)
    editing = message is not None
    try:
        if editing:
            bulk.edit(message, current_user, **options)
        else:
            message = bulk.compose(current_user, service, booking_ids=guests, **options)
    except bulk.MessageError as exc:
        flash(str(exc), "error")
        return _compose_page(form, service, message=message)
    if message.status != MessageStatus.SCHEDULED:
        flash(_("メッセージの送信を開始しました。"), "success")
    else:
        flash(_("メッセージを保存しました。") if editing else _("メッセージを予約しました。"), "success")
    return redirect(url_for("messages.detail", message_id=message.id))


@bp.route("/messages")
@login_required
@reads_only
def index():
    messages = db.session.query(Message).filter_by(host_id=current_user.id).order_by(Message.id.desc()).all()
    progress = bulk.progress_of(messages)
    # Not started yet: how many it would reach now (guests book and cancel after it was written).
    counts = {m.id: bulk.audience_count(m) for m in messages
              if m.status in (MessageStatus.SCHEDULED, MessageStatus.HELD)}
    return render_template("messages/index.html", messages=messages, progress=progress, counts=counts,
                           stage=bulk.stage, stage_labels=bulk.STAGES)


@bp.route("/messages/new", methods=["GET", "POST"])
@login_required
def compose():
    """Compose; ``?service_id=&slot_ids=&template=`` prefill (e.g. from the Zoom OFF page): only the
    service's own upcoming slots are chosen, and ``template`` names one of ``bulk.PREFILLS``.
    With ``&booking_ids=`` (a lesson's absent guests, from its page) only those of the slots' own
    confirmed guests are the recipients, past slots included."""
    service_id = request.values.get("service_id", type=int)
    service = get_own_service_or_404(service_id, current_user) if service_id else None
    form = MessageForm()
    if request.method == "GET":
        slot_ids = request.args.getlist("slot_ids", type=int)
        guests = bulk.own_guest_ids(service, slot_ids, request.args.getlist("booking_ids", type=int)) if service else []
        if guests:
            form.slot_ids.data, form.booking_ids.data = slot_ids, guests
        elif service is not None:
            form.slot_ids.data = bulk.upcoming_slot_ids(service, slot_ids)
        prefilled = bulk.prefill(request.args.get("template"))
        if prefilled is not None:
            form.subject.data, form.body.data = prefilled
    if service is None or request.method == "GET":
        return _compose_page(form, service)
    return _composer(form, service)


@bp.route("/messages/<int:message_id>")
@login_required
@reads_only
def detail(message_id):
    message = _own_message_or_404(message_id)
    p = bulk.progress(message)
    waiting = message.status in (MessageStatus.SCHEDULED, MessageStatus.HELD)
    return render_template("messages/detail.html", message=message, progress=p, stage_key=bulk.stage(message, p),
                           stage_labels=bulk.STAGES, recipients=bulk.recipients(message), action_form=EmptyForm(),
                           audience_count=bulk.audience_count(message) if waiting else None)


@bp.route("/messages/<int:message_id>/progress.json")
@login_required
@reads_only
def progress(message_id):
    """Polled by progress.js: counts, the stage and, while sending, each recipient's row."""
    message = _own_message_or_404(message_id)
    p = bulk.progress(message)
    stage_key = bulk.stage(message, p)
    payload = dict(status=message.status.value, stage=stage_key, stage_label=str(bulk.STAGES[stage_key]),
                   total=p.total, sent=p.sent, failed=p.failed, done=p.done, percent=p.percent)
    if message.status == MessageStatus.SENDING:
        payload.update(
            stage_html=render_template("messages/_status.html", stage_key=stage_key, stage_labels=bulk.STAGES),
            rows_html=render_template("messages/_recipient_rows.html", recipients=bulk.recipients(message)),
            resend_label=_("失敗した%(n)d件だけ再送する", n=p.failed))
    return jsonify(payload)


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
        return _compose_page(form, message.service, message=message)
    return _composer(form, message.service, message=message)


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
