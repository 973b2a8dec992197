"""Staff pages; every one is refused to anyone who is not staff."""
from functools import wraps

from flask import abort, current_app, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from app.extensions import db
from app.models import Delivery, DeliveryStatus
from app.staff import bp
from app.staff.mailbox import one_mail, received_mail


def staff_required(view):
    """Login required, and staff only (hosts get 403)."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_staff:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/mailbox")
@staff_required
def mailbox():
    return render_template("staff/mailbox.html", mails=received_mail(current_app.config["MAILBOX_DIR"]))


@bp.route("/mailbox/<key>")
@staff_required
def mail(key):
    found = one_mail(current_app.config["MAILBOX_DIR"], key)
    if found is None:
        abort(404)
    return render_template("staff/mail.html", mail=found)


@bp.route("/deliveries")
@staff_required
def deliveries():
    query = select(Delivery).order_by(Delivery.id.desc()).limit(200)
    status = request.args.get("status")
    if status in {s.name for s in DeliveryStatus}:
        query = query.where(Delivery.status == DeliveryStatus[status])
    return render_template("staff/deliveries.html", deliveries=db.session.scalars(query).all(),
                           statuses=list(DeliveryStatus), status=status)
