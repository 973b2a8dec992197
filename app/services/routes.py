"""Host pages for services and slots. Every lookup goes through the owner-checking helpers."""
from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user, login_required

from app import clock, jobs, limits
from app.booking import booking as bookings
from app.extensions import db, reads_only
from app.forms import EmptyForm
from app.services import bp, catalog, guests, notes, repeat as repeats, sharing, slots
from app.services.forms import (KIND_LABELS, RESCHEDULE_CUTOFF_LABELS, VENUE_LABELS, GuestMessageForm, NotesForm,
                                RemoveBookingForm, RepeatForm, ServiceForm, SlotForm, reminder_label)
from app.meetings import attendance, planning, reminders, timing, tools, withdraw
from app.queue import enqueue_after_commit

#: Guests named on the page that asks before a slot is cancelled (the rest are counted).
CANCEL_PAGE_GUESTS = 20


def _service_values(form: ServiceForm) -> dict:
    values = {name: getattr(form, name).data for name in
              ("kind", "title", "description", "duration_minutes", "capacity", "venue", "venue_address", "meeting_url",
               "host_notes", "cancellation_policy", "reschedule_cutoff_hours", "join_opens_minutes", "url_lead_hours",
               "reminder_minutes")}
    if catalog.per_guest_links_available(current_user):  # otherwise the box is not shown: keep what was set
        values["per_guest_links"] = form.per_guest_links.data
    return values


def _unlinked_tools() -> str:
    """What the service form says of the video tools the host has not linked (or must relink)."""
    names = [tool.name for tool in tools.all_tools()
             if (found := tool.link_for(current_user.id)) is None or not found.is_active]
    if not names:
        return ""
    return _("%(tools)sは連携していません。選んだ場合、連携するまでURLは自動で発行されません（連絡事項で案内してください）。",
             tools=_("、").join(names))


def _slot_error(form: SlotForm, exc: Exception) -> None:
    if isinstance(exc, limits.NoticeBudgetSpent):
        form.starts_at.errors.append(_budget_message(exc))
        return
    messages = {
        slots.SlotInPast: _("過去の日時は選べません。これから先の日時を入力してください。"),
        slots.SlotTaken: _("この日時にはすでに開催日時があります。"),
        slots.SlotNotOpen: _("この開催日時は中止済みのため変更できません。"),
    }
    form.starts_at.errors.append(messages[type(exc)])


def _budget_message(exc: limits.NoticeBudgetSpent) -> str:
    return _("予約者へのお知らせメールは1日%(limit)d通までです。今日はこれ以上お送りできないため、変更していません。"
             "明日あらためてお試しいただくか、運営にお問い合わせください。", limit=exc.limit)


@bp.route("/services")
@login_required
@reads_only
def index():
    return render_template("services/index.html",
                           services=catalog.services_page(current_user, request.args.get("page", 1, type=int)),
                           kind_labels=KIND_LABELS, venue_labels=VENUE_LABELS)


@bp.route("/services/new", methods=["GET", "POST"])
@login_required
def create():
    form = ServiceForm()
    if form.validate_on_submit():
        service = catalog.create_service(current_user, **_service_values(form))
        db.session.commit()
        flash(_("サービス「%(title)s」を作成しました。開催日時を追加しましょう。", title=service.title), "success")
        return redirect(url_for("services.detail", service_id=service.id))
    return render_template("services/form.html", form=form, service=None, video_tools_unlinked=_unlinked_tools(),
                           per_guest_links_available=catalog.per_guest_links_available(current_user))


@bp.route("/services/<int:service_id>/edit", methods=["GET", "POST"])
@login_required
def edit(service_id):
    service = catalog.get_own_service_or_404(service_id, current_user)
    form = ServiceForm(obj=service)
    if not form.is_submitted():
        form.kind.data = service.kind.value
        form.venue.data = service.venue.value
        form.reminder_minutes.data = timing.reminder_minutes(service)
    if form.validate_on_submit():
        before = reminders.schedule_of(service)
        catalog.save_service(service, **_service_values(form))
        replanning = reminders.schedule_changed(before, service)
        if replanning:
            enqueue_after_commit(jobs.replan_lesson_emails, service.id)
        db.session.commit()
        flash(_("サービスを保存しました。ご予約済みの開催日時のメールも、新しい設定で送ります。") if replanning
              else _("サービスを保存しました。"), "success")
        return redirect(url_for("services.detail", service_id=service.id))
    return render_template("services/form.html", form=form, service=service, video_tools_unlinked=_unlinked_tools(),
                           per_guest_links_available=catalog.per_guest_links_available(current_user))


@bp.route("/services/<int:service_id>", methods=["GET", "POST"])
@login_required
@reads_only
def detail(service_id):
    """The service with its slots, a page of one tab at a time; the form here adds a slot."""
    service = catalog.get_own_service_or_404(service_id, current_user)
    form = SlotForm()
    if form.validate_on_submit():
        try:
            slot = slots.add_slot(service, clock.local_to_utc(form.starts_at.data, current_user.timezone))
        except (slots.SlotInPast, slots.SlotTaken) as exc:
            _slot_error(form, exc)
        else:
            db.session.commit()
            flash(_("開催日時を追加しました。"), "success")
            page = slots.upcoming_page_of(slot)
            return redirect(url_for("services.detail", service_id=service.id, page=page if page > 1 else None,
                                    _anchor=f"slot-{slot.id}"))
    tab = request.args.get("tab") if request.args.get("tab") in slots.TABS else "upcoming"
    shown, counts, slot_meetings = slots.service_slots(service, tab, request.args.get("page", 1, type=int))
    public_url = sharing.public_url(service)
    return render_template("services/detail.html", service=service, form=form, kind_labels=KIND_LABELS,
                           venue_labels=VENUE_LABELS, cutoff_labels=RESCHEDULE_CUTOFF_LABELS, tab=tab, counts=counts,
                           reminder_labels=[reminder_label(n) for n in timing.reminder_minutes(service)],
                           issues_urls=tools.tool_for(service) is not None,
                           slots=shown,
                           public_url=public_url, qr=sharing.qr_data_uri(public_url),
                           meetings=slot_meetings if tools.tool_for(service) else {},
                           connection=tools.shown_link(current_user, service))


def _repeat_plan(service, form: RepeatForm) -> list:
    return repeats.plan_weekly(service, current_user.timezone, form.start_date.data, form.at.data, form.count.data,
                               form.weekday_number)


def _skipped_text(skipped: list) -> str:
    """「2026年6月2日(火) 20:00（過去の日時）、…」: each date not added, and why."""
    reasons = {None: _("選ばれていません"), repeats.PAST: _("過去の日時"), repeats.EXISTS: _("すでに登録済み"),
               repeats.OVERLAP: _("ほかの開催日時と重なっています")}
    tz = current_user.timezone
    return _("、").join(_("%(when)s（%(why)s）", when=clock.format_datetime_local(d.starts_at, tz, str(get_locale() or "ja")),
                       why=reasons[d.reason]) for d in skipped)


@bp.route("/services/<int:service_id>/repeat", methods=["GET", "POST"])
@login_required
def repeat(service_id):
    """「毎週の日時をまとめて追加」: GET with the form's values shows the preview (nothing changes);
    POST adds the chosen dates, all in one transaction, and says what was added and skipped."""
    service = catalog.get_own_service_or_404(service_id, current_user)
    if request.method == "POST":
        form = RepeatForm()
        if form.validate_on_submit():
            planned = _repeat_plan(service, form)
            try:
                added, skipped = repeats.add_planned(service, planned, set(request.form.getlist("dates")))
            except repeats.NothingChosen:
                db.session.rollback()
                flash(_("追加できる日時が選ばれていません。追加する日時にチェックを入れてください。"), "error")
            except (slots.SlotInPast, slots.SlotTaken):
                db.session.rollback()
                flash(_("確認中にほかの開催日時が追加されたため、何も追加していません。もう一度確認してください。"), "error")
            else:
                db.session.commit()
                message = _("開催日時を%(count)d件追加しました。", count=len(added))
                if skipped:
                    message += " " + _("追加しなかった日時（%(count)d件）: %(dates)s", count=len(skipped),
                                       dates=_skipped_text(skipped))
                flash(message, "success")
                return redirect(url_for("services.detail", service_id=service.id))
            return redirect(url_for("services.repeat", service_id=service.id, **_repeat_args(form)))
    else:
        form = RepeatForm(request.args, meta={"csrf": False})
        if not request.args:
            form.start_date.data = clock.to_local(clock.now(), current_user.timezone).date()
    planned = _repeat_plan(service, form) if request.args and form.validate() else None
    return render_template("services/repeat.html", service=service, form=form, planned=planned,
                           action_form=EmptyForm(), repeats=repeats)


def _repeat_args(form: RepeatForm) -> dict:
    return {"start_date": form.start_date.raw_data[0] if form.start_date.raw_data else None,
            "weekday": form.weekday.data or None,
            "at": form.at.raw_data[0] if form.at.raw_data else None, "count": form.count.data}


@bp.route("/services/<int:service_id>/qr.png")
@login_required
@reads_only
def booking_qr(service_id):
    """The booking page's QR code as a PNG to print on a flyer (「QRコードを保存」)."""
    service = catalog.get_own_service_or_404(service_id, current_user)
    # Inline (the link's ``download`` attribute saves it under this name): opened directly, it is shown.
    return Response(sharing.qr_png(sharing.public_url(service)), mimetype="image/png",
                    headers={"Content-Disposition": f'inline; filename="booking-qr-{service.id}.png"'})


@bp.route("/slots/<int:slot_id>")
@login_required
@reads_only
def slot_detail(slot_id):
    """One slot: its Zoom meeting and its guests, a page at a time, searchable by name or email."""
    slot, meeting = catalog.get_own_slot_and_meeting_or_404(slot_id, current_user)
    search = (request.args.get("q") or "").strip()[:guests.SEARCH_MAX]
    cancelled, cancelled_total = guests.cancelled_guests(slot)
    return render_template("services/slot.html", slot=slot, service=slot.service, q=search,
                           guests=guests.guest_page(slot, request.args.get("page", 1, type=int), search),
                           cancelled=cancelled, cancelled_total=cancelled_total,
                           meeting=meeting if tools.tool_for(slot.service) else None,
                           connection=tools.shown_link(current_user, slot.service),
                           url_holders=guests.cancelled_url_holders(slot) if tools.tool_for(slot.service) else [],
                           attendance=(attendance.slot_attendance(slot, meeting)
                                       if slot.is_open and clock.now() >= slot.starts_at else None),
                           # After the end: no 「URLを再送」 (a URL email for a lesson that is over) nor 「予約を取り消す」.
                           lesson_over=clock.now() >= slot.ends_at,
                           action_form=EmptyForm())


@bp.route("/slots/<int:slot_id>/guests.csv")
@login_required
@reads_only
def guests_csv(slot_id):
    """「CSVをダウンロード」: every guest of the slot, confirmed and cancelled, for Excel."""
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    return Response(guests.guest_list_csv(slot, current_user.timezone), mimetype="text/csv",
                    headers={"Content-Disposition": guests.csv_disposition(slot, current_user.timezone),
                             # Names and addresses: not for a shared cache, nor kept on disk.
                             "Cache-Control": "private, no-store"})


def _back_to_guests(slot_id: int, anchor: str):
    """Back to the slot's page (and guest page and search the action was made from)."""
    page = request.args.get("page", 1, type=int)
    return redirect(url_for("services.slot_detail", slot_id=slot_id, page=page if page > 1 else None,
                            q=request.args.get("q") or None, _anchor=anchor))


@bp.route("/slots/<int:slot_id>/zoom/start")
@login_required
def start_meeting(slot_id):
    """「Zoomミーティングを確認」: fetch a fresh host start URL (they expire after 2 hours) and go."""
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    try:
        return redirect(planning.fresh_start_url(slot))
    except planning.NoMeeting as exc:
        flash(str(exc), "error")
        return _back_to_guests(slot.id, f"slot-{slot.id}")


@bp.route("/slots/<int:slot_id>/zoom/delete", methods=["POST"])
@login_required
def retry_delete(slot_id):
    """「もう一度削除する」: one more attempt to delete a meeting Zoom did not delete."""
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    if not EmptyForm().validate_on_submit():
        abort(400)
    tool_name = tools.tool_of_slot(slot).name
    failure = withdraw.retry_withdraw(slot)
    if failure is None:
        flash(_("%(tool)s上のミーティングを削除しました。", tool=tool_name), "success")
    else:
        flash(_("まだ削除できませんでした。%(why)s", why=failure.delete_text(tool_name)), "error")
    if request.form.get("next") == "settings":
        return redirect(url_for("zoom.settings"))
    return _back_to_guests(slot.id, f"slot-{slot.id}")


@bp.route("/slots/<int:slot_id>/resend-url", methods=["POST"])
@login_required
def resend_url(slot_id):
    """「URLを再送」: the guest list is one form, each row's button sends its booking id."""
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    booking = catalog.get_own_booking_or_404(request.form.get("booking_id", 0, type=int), current_user)
    if booking.slot_id != slot.id:
        abort(404)
    if clock.now() >= slot.ends_at:
        flash(_("このレッスンは終了しているため、参加URLは再送できません。"), "error")
    elif EmptyForm().validate_on_submit():
        try:
            limits.spend_host_notices(current_user.id, 1)
        except limits.NoticeBudgetSpent as exc:
            flash(_budget_message(exc), "error")
        else:
            planning.resend_url(booking)
            db.session.commit()
            flash(_("%(name)s様に参加URLのご案内を再送します。", name=booking.guest_name), "success")
    return _back_to_guests(slot.id, f"booking-{booking.id}")


@bp.route("/bookings/<int:booking_id>/attendance", methods=["POST"])
@login_required
def set_attendance(booking_id):
    """「出席にする」「欠席にする」「自動の判定に戻す」 on the slot page: the host's word wins over the events."""
    booking = catalog.get_own_booking_or_404(booking_id, current_user)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        attendance.set_by_host(booking, current_user.id, request.form.get("attendance", ""))
    except ValueError:
        abort(400)
    db.session.commit()
    flash(_("%(name)s様の出欠を更新しました。", name=booking.guest_name), "success")
    return redirect(url_for("services.slot_detail", slot_id=booking.slot_id, _anchor=f"attendance-{booking.id}"))


@bp.route("/bookings/<int:booking_id>/remove", methods=["GET", "POST"])
@login_required
def remove_booking(booking_id):
    """「予約を取り消す」: the host removes one guest's booking (a bot's, a double one), telling them."""
    booking = catalog.get_own_booking_or_404(booking_id, current_user)
    form = RemoveBookingForm()
    if not booking.is_confirmed:
        flash(_("このご予約はすでにキャンセルされています。"), "info")
        return redirect(url_for("services.slot_detail", slot_id=booking.slot_id))
    if clock.now() >= booking.slot.ends_at:
        flash(_("このレッスンは終了しているため、ご予約は取り消せません。出欠は「出欠」の欄で設定できます。"), "error")
        return redirect(url_for("services.slot_detail", slot_id=booking.slot_id))
    if form.validate_on_submit():
        try:
            limits.spend_host_notices(current_user.id, 1)
        except limits.NoticeBudgetSpent as exc:
            flash(_budget_message(exc), "error")
        else:
            bookings.cancel_booking(booking, by_host=True, message=(form.message.data or "").strip())
            db.session.commit()
            flash(_("%(name)s様のご予約を取り消し、お知らせのメールを送ります。", name=booking.guest_name), "success")
            return redirect(url_for("services.slot_detail", slot_id=booking.slot_id))
    return render_template("services/remove_booking.html", booking=booking, slot=booking.slot,
                           service=booking.slot.service, form=form)


@bp.route("/bookings/<int:booking_id>/message", methods=["GET", "POST"])
@login_required
def message_guest(booking_id):
    """「メッセージを送る」: an email from the host to this one guest (``guests.send_message``)."""
    booking = catalog.get_own_booking_or_404(booking_id, current_user)
    slot = booking.slot
    if not booking.is_confirmed or not slot.is_open:
        flash(_("このご予約はキャンセルされているため、メッセージは送れません。") if not booking.is_confirmed
              else _("この開催日時は中止されているため、メッセージは送れません。"), "info")
        return _back_to_guests(slot.id, "guests")
    form = GuestMessageForm()
    if not form.is_submitted():
        form.subject.data = _("「%(title)s」について", title=slot.service.title)
    if form.validate_on_submit():
        try:
            limits.spend_host_notices(current_user.id, 1)
        except limits.NoticeBudgetSpent as exc:
            form.body.errors.append(_("予約者へのお知らせメールは1日%(limit)d通までです。今日はこれ以上お送りできないため、"
                                      "送信していません。明日あらためてお試しください。", limit=exc.limit))
        else:
            guests.send_message(current_user, booking, form.subject.data, form.body.data)
            db.session.commit()
            flash(_("%(name)s様にメッセージを送ります。", name=booking.guest_name), "success")
            return _back_to_guests(slot.id, f"booking-{booking.id}")
    page = request.args.get("page", 1, type=int)
    back_url = url_for("services.slot_detail", slot_id=slot.id, page=page if page > 1 else None,
                       q=request.args.get("q") or None, _anchor=f"booking-{booking.id}")
    return render_template("services/message_guest.html", booking=booking, slot=slot, service=slot.service,
                           form=form, back_url=back_url)


@bp.route("/services/<int:service_id>/notes", methods=["GET", "POST"])
@login_required
def edit_notes(service_id):
    """The notes editor, with a live preview of the confirmation email."""
    service = catalog.get_own_service_or_404(service_id, current_user)
    form = NotesForm(obj=service)
    if form.validate_on_submit():
        service.host_notes = form.host_notes.data or ""
        db.session.commit()
        flash(_("ホストからの連絡事項を保存しました。これから送るメールに反映されます。"), "success")
        return redirect(url_for("services.detail", service_id=service.id))
    text = form.host_notes.data or ""
    return render_template("services/notes.html", service=service, form=form,
                           preview=notes.preview_confirmation(service, text),
                           hint=notes.needs_url_hint(service, text, tools.shown_link(current_user, service)))


@bp.route("/services/<int:service_id>/notes/preview", methods=["POST"])
@login_required
def preview_notes(service_id):
    """JSON for the live preview (the draft is never saved here)."""
    service = catalog.get_own_service_or_404(service_id, current_user)
    form = NotesForm()
    if not form.validate():
        return jsonify(errors=form.host_notes.errors), 400
    text = form.host_notes.data or ""
    rendered = notes.preview_confirmation(service, text)
    return jsonify(subject=rendered.subject, text=rendered.text, html=rendered.html,
                   hint=notes.needs_url_hint(service, text, tools.shown_link(current_user, service)))


@bp.route("/slots/<int:slot_id>/move", methods=["GET", "POST"])
@login_required
def move_slot(slot_id):
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    form = SlotForm()
    if not form.is_submitted():
        form.starts_at.data = clock.to_local(slot.starts_at, current_user.timezone).replace(tzinfo=None)
    if form.validate_on_submit():
        try:
            slots.move_slot(slot, clock.local_to_utc(form.starts_at.data, current_user.timezone))
        except (slots.SlotInPast, slots.SlotTaken, slots.SlotNotOpen, limits.NoticeBudgetSpent) as exc:
            _slot_error(form, exc)
        else:
            db.session.commit()
            flash(_("開催日時を変更しました。予約者に変更のお知らせを送ります。"), "success")
            return redirect(url_for("services.detail", service_id=slot.service_id))
    return render_template("services/move_slot.html", slot=slot, form=form)


@bp.route("/slots/<int:slot_id>/cancel", methods=["GET", "POST"])
@login_required
def cancel_slot(slot_id):
    """GET shows who will be told; POST cancels."""
    slot = catalog.get_own_slot_or_404(slot_id, current_user)
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            told = slots.cancel_slot(slot)
        except slots.SlotNotOpen:
            flash(_("この開催日時はすでに中止されています。"), "info")
        except limits.NoticeBudgetSpent as exc:
            flash(_budget_message(exc), "error")
        else:
            db.session.commit()
            flash(_("開催日時を中止しました。予約者%(count)d名に中止のお知らせを送ります。", count=told), "success")
        return redirect(url_for("services.detail", service_id=slot.service_id))
    return render_template("services/cancel_slot.html", slot=slot, form=form,
                           guests=guests.first_guests([slot.id], CANCEL_PAGE_GUESTS).get(slot.id, []))
