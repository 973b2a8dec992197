"""Turning an outbox row into an email, at send time, from current data.

Each kind of email registers a context builder with ``@email_kind``; the builder loads what it
needs from the row's ids and may raise ``SkipDelivery`` when the email no longer applies (a
cancelled booking, say). Templates are ``email/<kind>.txt`` and ``email/<kind>.html`` rendered
from the same context. User text only ever enters as template *variables* (autoescaped in
HTML); it is never compiled as a template.
"""
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, render_template
from flask_babel import force_locale

from app.models import Delivery


class SkipDelivery(Exception):
    """The email no longer applies; the outbox marks the row cancelled with this reason."""


@dataclass(frozen=True)
class EmailKind:
    name: str
    subject: Callable[[dict], str]
    build_context: Callable[[Delivery], dict]


_KINDS: dict[str, EmailKind] = {}


def email_kind(name: str, subject: Callable[[dict], str]):
    """Register the context builder of the email kind ``name``."""

    def register(build_context: Callable[[Delivery], dict]):
        _KINDS[name] = EmailKind(name, subject, build_context)
        return build_context

    return register


def registered_kinds() -> dict[str, EmailKind]:
    """Every email kind the product sends (for the staff template gallery)."""
    return dict(_KINDS)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    #: (filename, content, maintype, subtype), e.g. an .ics invitation
    attachments: tuple = ()


def render_kind(name: str, context: dict, locale: str) -> RenderedEmail:
    """Render the subject, text and HTML of one email kind from a prepared context."""
    kind = _KINDS[name]
    with force_locale(locale):
        subject = kind.subject(context)
        text = render_template(f"email/{name}.txt", subject=subject, **context)
        html = render_template(f"email/{name}.html", subject=subject, **context)
    return RenderedEmail(subject, text, html, tuple(context.get("attachments", ())))


def render_delivery(delivery: Delivery) -> RenderedEmail:
    """Build the context of an outbox row from current data and render it."""
    with force_locale(delivery.locale):
        context = _KINDS[delivery.kind].build_context(delivery)
    return render_kind(delivery.kind, context, delivery.locale)


def build_message(delivery: Delivery, rendered: RenderedEmail) -> EmailMessage:
    """A UTF-8 text + HTML email to exactly one recipient.

    ``EmailMessage`` (not the legacy ``MIMEText`` API) refuses CR/LF in headers, so no user
    text can inject a header.
    """
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = Address(display_name=delivery.to_name or "", addr_spec=delivery.to_email)
    msg["Message-ID"] = delivery.message_id or make_msgid(domain="booking.local")
    msg.set_content(rendered.text, charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    for filename, content, maintype, subtype in rendered.attachments:
        if maintype == "text":  # e.g. an .ics: UTF-8 text, so Japanese titles survive
            msg.add_attachment(content.decode("utf-8"), subtype=subtype, charset="utf-8", filename=filename)
        else:
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg
