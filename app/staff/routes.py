"""Staff pages; every one is refused to anyone who is not staff. Dates are Japan time (labelled)."""
from functools import wraps

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from app.extensions import db, reads_only
from app.forms import EmptyForm
from app.mail import outbox
from app.mail.render import registered_kinds, render_kind
from app.mail.samples import sample_contexts
from app.models import Delivery, DeliveryStatus, User
from app.staff import bp
from app.staff import deliveries as delivery_log
from app.staff.deliveries import readable_error
from app.staff.mailbox import one_mail, received_count, received_mail
from app.zoom import legacy


def staff_required(view):
    """Login required, and staff only (hosts get 403)."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_staff:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/")
@staff_required
@reads_only
def index():
    """The staff home: where staff land (after login, and at ``/``), with what needs a look today."""
    return render_template("staff/home.html", overview=delivery_log.overview(),
                           mailbox_count=received_count(current_app.config["MAILBOX_DIR"]),
                           kinds=len(registered_kinds()), migration=legacy.progress())


@bp.route("/templates")
@staff_required
def templates():
    """Every email with sample data: variants × languages, text and HTML, phone and desktop."""
    kinds = delivery_log.ordered_kinds()
    kind = request.args.get("kind") or kinds[0]
    if kind not in registered_kinds():
        abort(404)
    # Sample data per language: the English preview has English names and texts, as a real one would.
    by_lang = {lang: sample_contexts(kind, lang) for lang in ("ja", "en")}
    rendered = [(variant, lang, render_kind(kind, by_lang[lang][variant], lang))
                for variant in by_lang["ja"] for lang in ("ja", "en")]
    return render_template("staff/templates.html", kinds=kinds, kind=kind, rendered=rendered,
                           kind_label=delivery_log.kind_label)


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
    """The delivery log: search by recipient, filter by kind, host and status."""
    query = select(Delivery).order_by(Delivery.id.desc()).limit(300)
    status = request.args.get("status")
    if status in {s.name for s in DeliveryStatus}:
        query = query.where(Delivery.status == DeliveryStatus[status])
    host_id = request.args.get("host_id", type=int)
    if host_id:
        query = query.where(Delivery.host_id == host_id)
    kind = request.args.get("kind") or None
    if kind:
        query = query.where(Delivery.kind == kind)
    q = (request.args.get("q") or "").strip()
    if q:
        like = f"%{q}%"
        query = query.where(or_(Delivery.to_email.ilike(like), Delivery.kind.ilike(like)))
    hosts = db.session.scalars(select(User).where(User.is_staff.is_(False)).order_by(User.email)).all()
    return render_template("staff/deliveries.html", deliveries=db.session.scalars(query).all(), hosts=hosts,
                           statuses=list(DeliveryStatus), status=status, host_id=host_id, q=q, kind=kind,
                           kinds=delivery_log.ordered_kinds(),
                           action_form=EmptyForm(), readable_error=readable_error,
                           kind_label=delivery_log.kind_label, state_label=delivery_log.state_label,
                           status_labels=delivery_log.STATUS_LABELS)


@bp.route("/deliveries/<int:delivery_id>/resend", methods=["POST"])
@staff_required
def resend(delivery_id):
    """Send a failed (or cancelled) email again, now."""
    if EmptyForm().validate_on_submit():
        if outbox.retry_now(delivery_id):
            db.session.commit()
            flash(_("再送を受け付けました。"), "success")
        else:
            flash(_("送信済みか送信中のメールは再送できません。"), "error")
    return redirect(request.referrer or url_for("staff.deliveries"))


@bp.route("/migration")
@staff_required
def migration():
    return render_template("staff/migration.html", progress=legacy.progress())
