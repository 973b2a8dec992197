"""Guest pages: the public service page, booking (with a confirm step), the booked page with
「カレンダーに追加」, the cancel link from the email, ``/j/`` and the platform's terms. They use the guest
layout (``guest_base.html``): the host's name and photo, no host navigation."""
from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from app.booking import booking as bookings
from app.booking import bp, calendar, guard, lesson
from app.booking.forms import BookingForm, RescheduleForm
from app.booking import reschedule as moves
from app.extensions import db
from app.forms import EmptyForm
from app.limits import limiter
from app.models import Service
from app.urls import external_url


@bp.app_template_global()
def guest_photo_url(host) -> str | None:
    """The absolute URL of the host's profile photo (guest emails: rendered outside any request), or None."""
    digest = getattr(host, "photo_digest", None)
    return external_url("account.photo", digest=digest) if digest else None


def _public_service_or_404(public_id: str) -> Service:
    service = db.session.scalar(select(Service).where(Service.public_id == public_id))
    if service is None or service.host.deleted_at is not None:  # app.account.closing: the host closed the account
        abort(404)
    return service


def _service_page(service, form=None, slots=None, status: int = 200, **context):
    """The public booking page (``accepting=False`` when it takes no bookings)."""
    return render_template("booking/service.html", service=service, host=service.host, form=form, slots=slots,
                           **bookings.venue_of(service), **context), status


def _confirm_page(service, form, slot):
    """The confirm step: what would be booked, the data in hidden fields, 「この内容で申し込む」."""
    return render_template("booking/confirm.html", service=service, host=service.host, form=form, slot=slot,
                           **bookings.venue_of(service))


@bp.route("/s/<public_id>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PUBLIC_FORM_LIMIT"], methods=["POST"])
def service_page(public_id):
    """Choose a date, type a name and address, check them on the confirm step, book.

    A post without ``confirm`` books nothing: it checks the form and the chosen date and shows
    them for a last look, with the data and the same bot-check token in hidden fields (the token
    is neither checked nor used up there). 「この内容で申し込む」 posts them again with ``confirm``:
    only that post goes through ``guard.check`` (which uses the token up) and books.
    """
    service = _public_service_or_404(public_id)
    form = BookingForm()
    if not service.host.email_verified:  # app.auth: its host has not confirmed their email address yet
        return _service_page(service, accepting=False, status=403 if form.is_submitted() else 200)
    slots = bookings.open_slots(service)
    form.slot_id.choices = [(slot.id, str(slot.id)) for slot in slots]
    token = None  # this rendering's bot-check token: a fresh one unless a post's is carried on
    if form.validate_on_submit():
        if form.back.data:  # 「入力画面に戻る」: the form again, as typed, with the same token
            token = form.form_token.data
        elif not form.confirm.data:
            try:
                slot = bookings.bookable_slot(service, form.slot_id.data)
            except bookings.SlotFull:
                flash(_("申し訳ありません。この日時は満席になりました。別の日時をお選びください。"), "error")
            except bookings.SlotUnavailable:
                flash(_("この日時は受付を終了しました。別の日時をお選びください。"), "error")
            else:
                return _confirm_page(service, form, slot)
        else:
            try:
                guard.check(form.form_token.data, form.website.data)
                booking = bookings.book(service, form.slot_id.data, form.guest_name.data, form.guest_email.data)
            except guard.NotAccepted as refused:
                if refused.too_fast:  # the token was not used up: the same confirm step, pressed again later
                    flash(_("恐れ入りますが、内容をご確認のうえ、もう一度「この内容で申し込む」を押してください。"), "error")
                    try:
                        return _confirm_page(service, form, bookings.bookable_slot(service, form.slot_id.data))
                    except (bookings.SlotFull, bookings.SlotUnavailable):
                        pass
                else:
                    flash(_("お申し込みを受け付けられませんでした。ページを再読み込みして、もう一度お試しください。"), "error")
            except bookings.TooManyForMailbox:
                flash(_("このメールアドレスへのお申し込みが短時間に集中しています。しばらくしてからもう一度お試しください。"),
                      "error")
            except bookings.SlotFull:
                flash(_("申し訳ありません。この日時は満席になりました。別の日時をお選びください。"), "error")
            except bookings.SlotUnavailable:
                flash(_("この日時は受付を終了しました。別の日時をお選びください。"), "error")
            except bookings.AlreadyBooked:
                flash(_("このメールアドレスでは、この日時をすでにお申し込み済みです。申し込み完了メールをご確認ください。"), "error")
            else:
                return redirect(url_for("booking.booked", public_id=public_id, token=booking.cancel_token))
            slots = bookings.open_slots(service)  # seats changed meanwhile: show them fresh
    form.form_token.data = token or guard.form_token()  # every rendering gets its own
    return _service_page(service, form=form, slots=slots)


def _booking_of(public_id: str, token: str):
    """The booking of a guest's page ``/s/<public_id>/booked/<token>``; 404 (a guest page) otherwise."""
    booking = bookings.booking_for_cancel_token(token)
    if booking is None or booking.slot.service.public_id != public_id:
        abort(404)
    return booking


@bp.route("/s/<public_id>/booked/<token>")
def booked(public_id, token):
    """After booking (and from the confirmation email): what was booked, how to join, the calendar, cancelling."""
    booking = _booking_of(public_id, token)
    service = booking.slot.service
    active = booking.is_confirmed and booking.slot.is_open
    return render_template("booking/booked.html", booking=booking, service=service, host=service.host,
                           active=active, can_move=active and moves.state_of(booking) == "open",
                           moved=request.args.get("moved") == "1",
                           **bookings.joining(booking),
                           **(calendar.links(booking, url_for) if active else {}))


@bp.route("/s/<public_id>/booked/<token>/calendar.ics")
def calendar_file(public_id, token):
    """「カレンダーに追加」: the booking as an .ics file (calendar apps open it)."""
    booking = _booking_of(public_id, token)
    if not (booking.is_confirmed and booking.slot.is_open):
        abort(404)
    response = make_response(calendar.ics(booking))
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="booking.ics"'
    return response


@bp.route("/s/<public_id>/booked/<token>/google")
def google_calendar(public_id, token):
    """「Googleカレンダーに追加」: on to Google Calendar with the booking filled in (the guest saves it there)."""
    booking = _booking_of(public_id, token)
    if not (booking.is_confirmed and booking.slot.is_open):
        abort(404)
    return redirect(calendar.google_url(booking))


@bp.route("/terms")
def terms():
    """The platform's terms of use (the operator's text: ``templates/booking/terms.html``)."""
    return render_template("booking/terms.html")


@bp.route("/privacy")
def privacy():
    """The platform's privacy policy (the operator's text: ``templates/booking/privacy.html``)."""
    return render_template("booking/privacy.html")


@bp.route("/c/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PUBLIC_FORM_LIMIT"], methods=["POST"])
def cancel(token):
    """GET only shows a confirmation (mail scanners follow links); the POST cancels."""
    booking = bookings.booking_for_cancel_token(token)
    if booking is None:
        abort(404)
    form = EmptyForm()
    if form.validate_on_submit():
        cancelled = bookings.cancel_booking(booking)
        if cancelled is not None:
            db.session.commit()
            flash(_("キャンセルを受け付けました。確認のメールをお送りしました。") if cancelled.emailed else
                  _("キャンセルを受け付けました。"), "success")
        return redirect(url_for("booking.cancel", token=token))
    return render_template("booking/cancel.html", booking=booking, service=booking.slot.service,
                           host=booking.slot.service.host, form=form)


@bp.route("/r/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PUBLIC_FORM_LIMIT"], methods=["POST"])
def reschedule(token):
    """「日時を変更」 from the guest emails: choose another date of the same service until the host's
    cutoff. GET only shows the choice (mail scanners follow links); the POST moves the booking."""
    booking = bookings.booking_for_cancel_token(token)
    if booking is None:
        abort(404)
    form = RescheduleForm()
    if form.validate_on_submit():
        try:
            moved = moves.move_booking(booking, form.slot_id.data)
        except moves.SlotFull:
            flash(_("申し訳ありません。この日時は満席になりました。ご予約は元の日時のままです。別の日時をお選びください。"), "error")
        except (moves.SlotUnavailable, moves.SameSlot):
            flash(_("この日時には変更できません。ご予約は元の日時のままです。別の日時をお選びください。"), "error")
        except moves.AlreadyBooked:
            flash(_("このメールアドレスでは、この日時をすでにお申し込み済みです。ご予約は元の日時のままです。"), "error")
        except (moves.NotMovable, moves.RescheduleOff, moves.PastCutoff):
            pass  # the page says why
        else:
            flash(_("日時を変更しました。確認のメールをお送りしました。") if moved.emailed else _("日時を変更しました。"),
                  "success")
            return redirect(url_for("booking.booked", public_id=booking.slot.service.public_id, token=token, moved=1))
        return redirect(url_for("booking.reschedule", token=token))
    service = booking.slot.service
    state = moves.state_of(booking)
    host = service.host
    return render_template("booking/reschedule.html", booking=booking, service=service, host=host, form=form,
                           state=state, slots=moves.target_slots(booking) if state == "open" else [],
                           cutoff_at=moves.cutoff_at(booking), tz=host.timezone,
                           contact=host.reply_to if host.show_contact_publicly else "")


@bp.route("/j/<token>")
def join(token):
    """The stable link in guest emails: the guest's lesson page (the date, a countdown, the tool,
    「参加する」 from ``join_opens_minutes`` before the start; after the end the host's notes).

    Safe to GET (mail scanners open links): it only reads. 「参加する」 is ``/j/<token>/go``.
    """
    booking = bookings.booking_for_join_token(token)
    if booking is None:
        abort(404)
    return _lesson_page(booking, token)


def _lesson_page(booking, token):
    service = booking.slot.service
    return render_template("booking/lesson.html", booking=booking, service=service, host=service.host,
                           lesson=lesson.lesson_page(booking), token=token)


@bp.route("/j/<token>/go")
def join_go(token):
    """「参加する」: redirect to the slot's *current* join URL (a re-issued meeting's too) and note the
    first press (``bookings.join_opened_at``). Without a URL to join it shows the lesson page.

    It does not wait for the button's opening time: a guest may check the link early (the page
    only activates the button then)."""
    booking = bookings.booking_for_join_token(token)
    if booking is None:
        abort(404)
    url = lesson.go_url(booking)
    if url is None:
        return _lesson_page(booking, token)
    if booking.join_opened_at is None:
        lesson.record_opened(booking)
    return redirect(url)
