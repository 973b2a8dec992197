"""Turning an outbox row into an email, at send time, from current data.

Each kind of email registers a context builder with ``@email_kind``; the builder loads what it
needs from the row's ids and may raise ``SkipDelivery`` when the email no longer applies (a
cancelled booking, say). Templates are ``email/<kind>.txt`` and ``email/<kind>.html`` rendered
from the same context. User text only ever enters as template *variables* (autoescaped in
HTML); it is never compiled as a template.
"""
from base64 import encodebytes
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import lru_cache
import re
import unicodedata
import uuid

from flask import current_app
from flask_babel import force_locale, gettext as _
from jinja2 import meta

from app import clock
from app.extensions import db
from app.models import Delivery, User


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
class ReplyHost:
    """The host a guest's reply reaches: named in the guest email's From, and its ``Reply-To``."""

    #: The host's display name as stored (the footer shows it; headers take ``header_name`` of it).
    name: str
    #: The host's contact address in its envelope (ASCII) form; "" in a preview (no email is sent).
    address: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    #: (filename, content, maintype, subtype), e.g. an .ics invitation
    attachments: tuple = ()
    #: A guest email whose replies reach the host: From 「<host>（<platform>）」, Reply-To the host.
    #: None: the platform's own email (From ``MAIL_FROM``, no Reply-To; the footer says 送信専用).
    reply_host: ReplyHost | None = None
    #: The From display name of a guest email (rendered in its locale); "" with no ``reply_host``.
    from_name: str = ""


#: The layout of the emails a host's guests get: exactly these are written in the host's name.
GUEST_LAYOUT = "email/_guest_layout.html"

_guest_kinds: dict[str, bool] = {}


def is_guest_kind(name: str) -> bool:
    """True when the email kind ``name`` goes to a host's guests (its HTML uses ``GUEST_LAYOUT``).

    Decided by the template, so the headers (From the host, Reply-To the host) and the footer that
    tells the guest where a reply goes (in that layout and ``_guest_footer.txt``) never disagree.
    """
    if name not in _guest_kinds:
        env = current_app.jinja_env
        source = env.loader.get_source(env, f"email/{name}.html")[0]
        _guest_kinds[name] = GUEST_LAYOUT in set(meta.find_referenced_templates(env.parse(source)))
    return _guest_kinds[name]


def reply_host_for(delivery: Delivery) -> ReplyHost | None:
    """Whom a reply to this row's email reaches: its host when it is a guest email (see
    ``is_guest_kind``) and the host can be written to; None (送信専用) otherwise. Loaded once per
    host per outbox batch."""
    if delivery.host_id is None or not is_guest_kind(delivery.kind):
        return None
    return per_batch(("reply_host", delivery.host_id), lambda: _reply_host(db.session.get(User, delivery.host_id)))


def _reply_host(host: User | None) -> ReplyHost | None:
    if host is None or host.deleted_at is not None:  # a closed account reads no replies
        return None
    for address in (host.reply_to, host.email):
        if "@" in (address or ""):
            try:
                return ReplyHost(host.display_name, envelope_address(address))
            except (ValueError, UnicodeError):
                continue
    return None


def render_kind(name: str, context: dict, locale: str) -> RenderedEmail:
    """Render the subject, text and HTML of one email kind from a prepared context.

    A guest email's text ends with ``email/_guest_footer.txt`` (its HTML layout has the same
    footer): where a reply goes. ``context["reply_host"]`` says it (``render_delivery`` sets it);
    without it (a preview) the email reads as the context's host's guests get it.
    """
    from app.templating import email_renderer  # it imports this module

    kind = _KINDS[name]
    guest = is_guest_kind(name)
    if "reply_host" not in context:
        host = context.get("host")
        context = {**context, "reply_host": ReplyHost(host.display_name, "") if guest and host else None}
    reply_host = context["reply_host"] if guest else None
    with force_locale(locale):
        subject = kind.subject(context)
        render = email_renderer()
        text = render(f"email/{name}.txt", subject=subject, **context)
        html = render(f"email/{name}.html", subject=subject, **context)
        if guest:
            footer = render("email/_guest_footer.txt", reply_host=reply_host)
            text = f"{text.rstrip()}\n\n{footer}"
        from_name = guest_from_name(reply_host.name) if reply_host else ""
    return RenderedEmail(subject, text, html, tuple(context.get("attachments", ())), reply_host, from_name)


def guest_from_name(host_name: str) -> str:
    """The From display name of a guest email: 「<host>（<platform>）」 (in the current locale)."""
    platform = current_app.config.get("PLATFORM_NAME") or parseaddr(current_app.config["MAIL_FROM"])[0]
    host_name = header_name(host_name)
    if not host_name:
        return header_name(platform)
    return _("%(host)s（%(platform)s）", host=host_name, platform=header_name(platform))


#: ``session.info`` key of the memo of the outbox batch being rendered (see ``per_batch``).
BATCH_MEMO = "outbox_batch_memo"


#: ``session.info`` key of the memo that outlives the batch's commits (see ``per_batch``).
BATCH_CHECKS = "outbox_batch_checks"


_batch_preloaders: list[Callable] = []


def batch_preloader(preload: Callable) -> Callable:
    """Register ``preload(bookings, memo)``, called as an outbox batch starts with the bookings its
    emails are about: it puts in the batch's memo, under the keys its ``per_batch`` calls use,
    what many rows read (a lesson's meeting, a host's link), in one query for the whole batch
    instead of one per lesson."""
    _batch_preloaders.append(preload)
    return preload


def preload_batch(bookings: list) -> None:
    """Run the registered preloaders for a batch's bookings (inside ``per_batch``'s batch)."""
    memo = db.session.info.get(BATCH_MEMO)
    if memo is not None and bookings:
        for preload in _batch_preloaders:
            preload(bookings, memo)


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
    context["reply_host"] = reply_host_for(delivery)
    return render_kind(delivery.kind, context, delivery.locale)


def build_message(delivery: Delivery, rendered: RenderedEmail) -> Message:
    """A UTF-8 text + HTML email (plus attachments) to exactly one recipient.

    Built with the stdlib's ``compat32`` MIME classes: the same message as ``EmailMessage``
    builds, at a fraction of the CPU (the header registry parses every header it is given; the
    figures are in bench/README.md). That API folds a line break in a header value into a new
    header, so ``_one_line`` refuses line breaks in every header value first: no user text can
    inject a header.

    A guest email (``rendered.reply_host`` with an address) is From 「<host>（<platform>）」 at the
    platform's own sender address (``MAIL_FROM``'s, which the platform's domain authenticates) with
    ``Reply-To`` the host's contact address; every other email is From ``MAIL_FROM`` alone. The
    host's name goes through ``header_name`` (no control character, bounded length) and RFC 2047.
    """
    body = _multipart("alternative", [_text_part(rendered.text, "plain"), _text_part(rendered.html, "html")])
    if rendered.attachments:
        body = _multipart("mixed", [body, *map(_attachment, rendered.attachments)])
    body["MIME-Version"] = "1.0"  # only the top level carries it
    body["Subject"] = subject_header(_one_line(rendered.subject))
    mail_from = current_app.config["MAIL_FROM"]
    reply_host = rendered.reply_host
    if reply_host is not None and reply_host.address:
        body["From"] = address_header(rendered.from_name, parseaddr(mail_from)[1])
        body["Reply-To"] = address_header(header_name(reply_host.name), reply_host.address)
    else:
        body["From"] = _from_header(mail_from)
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


#: The most characters of a host's name a header carries (display names are up to 80).
HEADER_NAME_LIMIT = 40

_SPACES = re.compile(r" {2,}")


@lru_cache(maxsize=1024)
def header_name(value: str) -> str:
    """``value`` made fit for a display name: every control, format (bidi overrides, zero-width)
    and line or paragraph separator character becomes a space, runs of spaces one, and at most
    ``HEADER_NAME_LIMIT`` characters (「…」 marks a cut). Never raises: a host's name is theirs to
    choose, and must neither break nor inject a header, nor stop their guests' emails."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") else c
                      for c in value or "")
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if len(cleaned) > HEADER_NAME_LIMIT:
        cleaned = cleaned[:HEADER_NAME_LIMIT - 1].rstrip() + "…"
    return cleaned


#: The longest ASCII word a Subject line can fold around (78 characters a line, less "Subject: "):
#: a longer one would be pushed to a line of its own, read as starting with a space.
_SUBJECT_WORD = 78 - len("Subject: ")


@lru_cache(maxsize=1024)
def subject_header(subject: str) -> str:
    """The Subject header's value: ASCII as it is (unless a word is too long for a line, or it
    would read as an encoded word: ``=?``), any other subject in RFC 2047 encoded words that each
    fit a line (the first beside ``Subject:``), on one line that the wire policy folds between
    them. Every guest of a lesson gets the same subject, so it is encoded once."""
    if subject.isascii() and "=?" not in subject and all(len(word) <= _SUBJECT_WORD for word in subject.split()):
        return subject
    encoded = Header(subject, "utf-8", header_name="Subject").encode()  # the first word fits beside the name
    return " ".join(line.strip() for line in encoded.splitlines())


@lru_cache(maxsize=1024)
def address_header(name: str, address: str) -> str:
    """``name <address>`` for a From or Reply-To header: an ASCII name quoted as RFC 5322 needs
    (quotes, commas, ``<>``, parentheses), any other name RFC 2047-encoded in encoded words of at
    most 75 characters each, so nothing in the name can read as an address or a new header."""
    address = envelope_address(address)
    name = _one_line(name)
    if not name:
        return address
    if name.isascii():  # always quoted: an ASCII "=?utf-8?…?=" in it stays text, not an encoded word
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    words = " ".join(line.strip() for line in Header(name, "utf-8").encode(maxlinelen=75).splitlines())
    return f"{words} <{address}>"


def _boundary() -> str:
    """A MIME boundary no part can contain: "=_" never occurs in base64, which every part uses.

    (Left unset, the generator makes one and compiles a regular expression per message to
    check the body for it.) 80 random bits keep ``Content-Type: multipart/alternative;
    boundary="…"`` within one 78-character line, which the wire policy writes as it is.
    """
    return f"=_{uuid.uuid4().hex[:20]}"


def _multipart(subtype: str, parts: list[Message]) -> Message:
    """What ``MIMEMultipart(subtype, boundary, parts)`` builds, less its MIME-Version."""
    body = Message()
    body["Content-Type"] = f'multipart/{subtype}; boundary="{_boundary()}"'
    body.set_payload(parts)
    return body


def _text_part(text: str, subtype: str) -> Message:
    """A UTF-8 text part in base64: what ``MIMEText(text, subtype, "utf-8")`` builds (less its
    MIME-Version, which only the top level carries), with its headers set as the strings they
    are rather than through ``set_charset`` and ``set_param`` (a good part of a send's CPU)."""
    part = Message()
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(encodebytes(text.encode("utf-8")).decode("ascii"))
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
