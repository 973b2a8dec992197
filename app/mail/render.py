"""Turning an outbox row into an email, at send time, from current data.

Each kind of email registers a context builder with ``@email_kind``; the builder loads what it
needs from the row's ids and may raise ``SkipDelivery`` when the email no longer applies (a
cancelled booking, say). Templates are ``email/<kind>.txt`` and ``email/<kind>.html`` rendered
from the same context. User text only ever enters as template *variables* (autoescaped in
HTML); it is never compiled as a template.
"""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import lru_cache
import uuid

from flask import current_app, render_template
from flask_babel import force_locale

from app import clock
from app.extensions import db
from app.models import Delivery


class SkipDelivery(Exception):
    """The email no longer applies; the outbox marks the row cancelled with this reason."""


#: ``last_error`` of a row waiting (``DeferDelivery``) rather than failing: the prefix, then the reason's code.
WAITING_PREFIX = "waiting:"


class DeferDelivery(Exception):
    """The email cannot be written truthfully yet (a URL email whose meeting cannot be issued now):
    the outbox keeps the row pending until ``until``, without spending one of its attempts.

    :param reason: a short code, kept in ``last_error`` after ``WAITING_PREFIX`` so pages can say why.
    :param quiet: a short wait nobody needs to hear of (a check to repeat): the row reads as an
        ordinary pending one (「送信予定」), not as waiting.
    """

    def __init__(self, until: datetime, reason: str, *, quiet: bool = False):
        super().__init__(reason)
        self.until = until
        self.reason = reason
        self.quiet = quiet


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


#: ``session.info`` key of the memo of the outbox batch being rendered (see ``per_batch``).
BATCH_MEMO = "outbox_batch_memo"


#: ``session.info`` key of the memo that outlives the batch's commits (see ``per_batch``).
BATCH_CHECKS = "outbox_batch_checks"


def per_batch(key, compute: Callable, *, across_commits: bool = False):
    """``compute()``, remembered for the rest of the outbox batch being rendered, which reads one
    snapshot (forgotten at the batch's end and at any commit or rollback during it); outside a
    batch (a preview), ``compute()`` every time.

    :param across_commits: remember it until the batch ends even across commits: for what is
        asked of another system (a meeting checked on its video tool), not read from our rows.
    """
    memo = db.session.info.get(BATCH_CHECKS if across_commits else BATCH_MEMO)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def render_delivery(delivery: Delivery) -> RenderedEmail:
    """Build the context of an outbox row from current data and render it."""
    with force_locale(delivery.locale):
        context = _KINDS[delivery.kind].build_context(delivery)
    return render_kind(delivery.kind, context, delivery.locale)


def build_message(delivery: Delivery, rendered: RenderedEmail) -> Message:
    """A UTF-8 text + HTML email (plus attachments) to exactly one recipient.

    Built with the stdlib's ``compat32`` MIME classes: the same message as ``EmailMessage``
    builds, at a quarter of the CPU (the header registry parses every header it is given; this
    is most of what a send costs). That API folds a line break in a header value into a new
    header, so ``_one_line`` refuses line breaks in every header value first: no user text can
    inject a header.
    """
    body = MIMEMultipart("alternative", _boundary(), [_text_part(rendered.text, "plain"),
                                                      _text_part(rendered.html, "html")])
    if rendered.attachments:
        del body["MIME-Version"]  # only the top level carries it
        body = MIMEMultipart("mixed", _boundary(), [body, *map(_attachment, rendered.attachments)])
    subject = _one_line(rendered.subject)
    body["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    body["From"] = _from_header(current_app.config["MAIL_FROM"])
    body["To"] = formataddr((_one_line(delivery.to_name or ""), envelope_address(delivery.to_email)), "utf-8")
    body["Date"] = format_datetime(clock.now())
    body["Message-ID"] = _one_line(delivery.message_id or make_msgid(domain="booking.local"))
    return body


def _one_line(value: str) -> str:
    """``value``, refusing any line break (``str.splitlines`` boundaries, as the folder splits)."""
    if value and value.splitlines() != [value]:
        raise ValueError(f"line break in a header value: {value!r}")
    return value


def envelope_address(address: str) -> str:
    """The ASCII form of an address for the envelope and the To header (IDN domain → punycode).

    The forms accept ASCII local parts only (``allow_smtputf8=False``): few mail providers
    relay SMTPUTF8.
    """
    local, _, domain = _one_line(address).rpartition("@")
    if not local.isascii():
        raise ValueError(f"non-ASCII local part: {address!r}")
    return address if domain.isascii() else f"{local}@{domain.encode('idna').decode('ascii')}"


@lru_cache(maxsize=4)
def _from_header(mail_from: str) -> str:
    return formataddr(parseaddr(mail_from), "utf-8")


def _boundary() -> str:
    """A MIME boundary no part can contain: "=_" never occurs in base64, which every part uses.

    (Left unset, the generator makes one and compiles a regular expression per message to
    check the body for it.)
    """
    return f"=_{uuid.uuid4().hex}"


def _text_part(text: str, subtype: str) -> MIMEText:
    part = MIMEText(text, subtype, "utf-8")
    del part["MIME-Version"]  # only the top level carries it
    return part


def _attachment(attachment: tuple) -> MIMEBase:
    filename, content, maintype, subtype = attachment
    if maintype == "text":  # e.g. an .ics: UTF-8 text, so Japanese titles survive
        part = _text_part(content.decode("utf-8"), subtype)
    else:
        part = MIMEBase(maintype, subtype)
        part.set_payload(content)
        encode_base64(part)
        del part["MIME-Version"]
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part
