"""Guest pages: the public service page, booking, and the cancel link from the email."""
from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from app import clock
from app.booking import booking as bookings
from app.booking import bp, guard
from app.booking.forms import BookingForm
from app.extensions import db
from app.forms import EmptyForm
from app.limits import limiter
from app.models import MeetingStatus, Service
from app.zoom import meetings


def _public_service_or_404(public_id: str) -> Service:
    service = db.session.scalar(select(Service).where(Service.public_id == public_id))
    if service is None:
        abort(404)
    return service


@bp.route("/s/<public_id>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PUBLIC_FORM_LIMIT"], methods=["POST"])
def service_page(public_id):
    service = _public_service_or_404(public_id)
    form = BookingForm()
    if not service.host.email_verified:  # app.auth: its host has not confirmed their email address yet
        return render_template("booking/service.html", service=service, accepting=False), \
            403 if form.is_submitted() else 200
    slots = bookings.open_slots(service)
    form.slot_id.choices = [(slot.id, str(slot.id)) for slot in slots]
    if form.validate_on_submit():
        try:
            guard.check(form.form_token.data, form.website.data)
            booking = bookings.book(service, form.slot_id.data, form.guest_name.data, form.guest_email.data)
        except guard.NotAccepted as refused:
            flash(_("恐れ入りますが、内容をご確認のうえ、もう一度「申し込む」を押してください。") if refused.too_fast else
                  _("お申し込みを受け付けられませんでした。ページを再読み込みして、もう一度お試しください。"), "error")
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
    form.form_token.data = guard.form_token()  # every rendering gets its own
    return render_template("booking/service.html", service=service, slots=slots, form=form)


@bp.route("/s/<public_id>/booked/<token>")
def booked(public_id, token):
    booking = bookings.booking_for_cancel_token(token)
    if booking is None or booking.slot.service.public_id != public_id:
        abort(404)
    return render_template("booking/booked.html", booking=booking, service=booking.slot.service,
                           **bookings.join_url_promise(booking))


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
    return render_template("booking/cancel.html", booking=booking, service=booking.slot.service, form=form)


@bp.route("/j/<token>")
def join(token):
    """The stable join link in guest emails: redirect to the slot's current Zoom URL.

    Safe to GET (mail scanners open links): it only reads.
    """
    booking = bookings.booking_for_join_token(token)
    if booking is None:
        abort(404)
    meeting = meetings.meeting_for(booking.slot_id)
    if booking.is_confirmed and booking.slot.is_open and meeting is not None and meeting.join_url \
            and meeting.status == MeetingStatus.ISSUED:
        return redirect(meeting.join_url)
    # Withdrawn = the host turned Zoom OFF (or never had it for this booking); otherwise the URL
    # is being (re-)issued and will come by email.
    withdrawn = meetings.covering_connection(booking) is None
    return render_template("booking/join_unavailable.html", booking=booking, service=booking.slot.service,
                           withdrawn=withdrawn, url_lead_hours=meetings.URL_LEAD_HOURS,
                           url_time_passed=meetings.url_due_at(booking.slot) <= clock.now())
