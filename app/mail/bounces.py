"""Reading bounces: the delivery status notifications (DSNs) that come back to the envelope sender
(``MAIL_BOUNCE_ADDRESS``) after an email left us, matched to that email's outbox row and marked
on it (``bounced_at``, ``bounce_reason``).

A relay that accepted an email and failed to deliver it later says so only this way, and so do
the Japanese carriers for most failures. The host's pages then read the guest's address as not
taking mail, as for a 5xx at send time (``app.services.guests.refused``).

What is read:

* RFC 3464 reports (``multipart/report; report-type=delivery-status``): a ``message/delivery-status``
  part with one block of fields per recipient (``Final-Recipient``, ``Action``, ``Status``,
  ``Diagnostic-Code``), and the returned email (``message/rfc822`` or ``text/rfc822-headers``);
* the common reports without that part (Exim's and others' plain text with ``X-Failed-Recipients``
  and a copy of the email's headers): the SMTP reply lines of the text and the copy's Message-ID.

Nothing is believed blindly. Only ``Action: failed`` with a permanent ``5.x.x`` status marks a
bounce (``delayed``/``4.x.x`` are logged and left alone). The returned Message-ID must be one we
generated (``outbox.message_id_for``: an HMAC nobody outside can compute) and stored on the row,
and the failed recipient must be the row's own address: a stray or forged report marks nothing.
Logs name the delivery id and the status code only, never an address.
"""
import enum
import hmac
import logging
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from sqlalchemy import update

from app import clock
from app.extensions import begin_write, db
from app.mail.render import envelope_address
from app.models import Delivery

log = logging.getLogger(__name__)

#: A DSN is a few kilobytes (the notice, the report, the returned headers or a returned email of
#: ours, which carry no attachments but a host's photo link): the reader refuses more (SMTP 552).
MAX_BYTES = 1024 * 1024
#: Reports about more recipients than this are read up to it (ours have one recipient each).
MAX_RECIPIENTS = 20
#: ``deliveries.bounce_reason``'s length.
REASON_LENGTH = 200

#: Our Message-IDs (``outbox.message_id_for``): a 128-bit HMAC, then the row's id.
_OUR_MESSAGE_ID = re.compile(r"<([0-9a-f]{32})\.(\d{1,18})\.outbox@[A-Za-z0-9.-]+>")
#: An RFC 3463 status code: class, subject, detail.
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
#: An SMTP reply line in a plain-text bounce: ``550 5.1.1 <a@b>: User unknown`` (``550-`` for a
#: line of a multi-line reply).
_REPLY_LINE = re.compile(r"(?m)^[ \t>]*([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\s+)?(\S.*)$")
#: Where a plain-text bounce's copy of the returned email begins (its first header line).
_COPY_STARTS = re.compile(r"(?im)^(?:return-path|received|message-id|from|to|subject|date):")
#: A reply code repeated at the start of each line of a multi-line reply (Gmail's ``550-5.1.1 ``).
_CONTINUATION = re.compile(r"\s[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?")
#: The first line's code of a multi-line reply (``550-``).
_FIRST_LINE_CODE = re.compile(r"^([245]\d\d)-")


class Outcome(str, enum.Enum):
    """What became of one report (a recipient's block, or a whole unreadable message)."""

    MARKED = "marked"
    #: The row was marked by an earlier report (a relay sends a DSN again, or several recipients).
    ALREADY = "already"
    #: ``delayed``, ``delivered``, ``relayed`` or a 4.x.x status: not a bounce.
    NOT_PERMANENT = "not_permanent"
    #: No Message-ID of ours, or one that matches no sent row.
    UNKNOWN_MESSAGE = "unknown_message"
    #: The Message-ID is ours but the failed recipient is not that email's recipient.
    WRONG_RECIPIENT = "wrong_recipient"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Report:
    """One recipient's delivery status in a DSN, and the Message-ID of the email it is about."""

    recipient: str
    action: str
    status: str
    diagnostic: str
    message_id: str | None

    @property
    def permanent(self) -> bool:
        """A failure that will not change on retry: ``Action: failed`` with a 5.x.x status."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def reason(self) -> str:
        """The receiving server's reply on one line (``550 5.1.1 <a@b>: User unknown``), led by the
        status when the reply does not hold it, for staff (≤ 200 characters)."""
        # A multi-line reply repeats its code on every line (Gmail's ``550-5.1.1 ``): once is enough.
        diagnostic = _CONTINUATION.sub(" ", _FIRST_LINE_CODE.sub(r"\1 ", self.diagnostic, count=1))
        if self.status not in diagnostic.split(" ", 2)[:2]:
            diagnostic = f"{self.status} {diagnostic}"
        return " ".join(diagnostic.split())[:REASON_LENGTH]


def _one_line(value) -> str:
    """A header value unfolded, control characters removed, whitespace collapsed."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(value or "")).split())


def _typed_value(value) -> str:
    """The value of a typed DSN field (``rfc822; a@b``, ``smtp; 550 …``) without its type."""
    text = _one_line(value)
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else text


def _address(value) -> str:
    """The address of a ``Final-Recipient``-like field, lower case; "" when there is none."""
    address = parseaddr(_typed_value(value))[1]
    return address.lower() if "@" in address else ""


def _our_message_id(text: str) -> str | None:
    """The first Message-ID of ours in ``text``."""
    match = _OUR_MESSAGE_ID.search(text or "")
    return match.group(0) if match else None


def _returned_message_id(dsn: Message) -> str | None:
    """The Message-ID of the returned email: the ``message/rfc822`` or ``text/rfc822-headers`` part."""
    for part in dsn.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            returned = part.get_payload()
            if isinstance(returned, list) and returned:
                found = _our_message_id(_one_line(returned[0].get("Message-ID")))
                if found:
                    return found
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            headers = HeaderParser().parsestr(text.decode("ascii", "replace"), headersonly=True)
            found = _our_message_id(_one_line(headers.get("Message-ID")))
            if found:
                return found
    return None


def _status_reports(dsn: Message, message_id: str | None) -> list[Report] | None:
    """The per-recipient blocks of the ``message/delivery-status`` part; ``None`` without one."""
    part = next((p for p in dsn.walk() if p.get_content_type() == "message/delivery-status"), None)
    if part is None or not isinstance(part.get_payload(), list):
        return None
    reports = []
    for block in part.get_payload()[1:MAX_RECIPIENTS + 1]:  # the first block is about the message
        status = _STATUS.search(_one_line(block.get("Status")))
        recipient = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        reports.append(Report(recipient=recipient, action=_one_line(block.get("Action")).lower(),
                              status=status.group(0) if status else "",
                              diagnostic=_typed_value(block.get("Diagnostic-Code")), message_id=message_id))
    return reports


def _text_of(dsn: Message) -> str:
    """The bounce's own words: its first ``text/plain`` part (or itself), up to the copy of the
    returned email, so that nothing in that email's text is read as the server's reply."""
    for part in dsn.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            text = payload.decode(part.get_content_charset() or "ascii", "replace")
            copy = _COPY_STARTS.search(text)
            return text[: copy.start()] if copy else text
    return ""


def _text_reports(dsn: Message, message_id: str | None) -> list[Report]:
    """Reports from a bounce without a delivery-status part (Exim-style): the recipients of its
    ``X-Failed-Recipients`` header, the first SMTP reply in its text, and the Message-ID of ours
    in its copy of the email (a part of it, or the text itself)."""
    recipients = [address.lower() for _, address in getaddresses(dsn.get_all("X-Failed-Recipients", []))
                  if "@" in address][:MAX_RECIPIENTS]
    reply = _REPLY_LINE.search(_text_of(dsn))
    if not recipients or reply is None:
        return []
    code, status, words = reply.groups()
    status = status or f"{code[0]}.0.0"
    if message_id is None:  # the copy is inline: the whole message, as text
        message_id = _our_message_id(dsn.as_string(policy=policy.compat32))
    # A plain-text bounce has no Action field: a 5xx reply is the failure it reports.
    return [Report(recipient=recipient, action="failed" if code.startswith("5") else "delayed", status=status,
                   diagnostic=f"{code} {status} {words}", message_id=message_id) for recipient in recipients]


def parse(raw: bytes) -> list[Report]:
    """The recipients' reports in a received bounce (empty when it holds none we can read).

    Raises nothing for junk: a message that is not a bounce yields no report.
    """
    dsn = message_from_bytes(raw, policy=policy.compat32)  # the most lenient policy: DSNs are machine-made
    message_id = _returned_message_id(dsn)
    reports = _status_reports(dsn, message_id)
    if reports is None:
        reports = _text_reports(dsn, message_id)
    return [report for report in reports if report.recipient and report.status]


def mark(report: Report) -> tuple[Outcome, int | None]:
    """Mark the email ``report`` is about as bounced, if the report holds up; commit.

    Returns what happened and the delivery's id (``None`` when no email of ours matches).
    Idempotent: the first report's time and reason stay. The row's status stays SENT: it left us.
    """
    match = _OUR_MESSAGE_ID.fullmatch(report.message_id or "")
    if match is None:
        return Outcome.UNKNOWN_MESSAGE, None
    delivery = db.session.get(Delivery, int(match.group(2)))
    # The stored Message-ID is set when the email was sent; compared in constant time (it is the secret).
    if delivery is None or not hmac.compare_digest((delivery.message_id or "").encode(), match.group(0).encode()):
        return Outcome.UNKNOWN_MESSAGE, None
    if report.recipient not in {delivery.to_email.lower(), _ascii_address(delivery.to_email)}:
        return Outcome.WRONG_RECIPIENT, delivery.id
    if not report.permanent:
        return Outcome.NOT_PERMANENT, delivery.id
    if delivery.bounced_at is not None:
        return Outcome.ALREADY, delivery.id
    begin_write()  # SQLite: a transaction that read cannot write once another process has written
    table = Delivery.__table__
    result = db.session.execute(update(table).where(table.c.id == delivery.id, table.c.bounced_at.is_(None))
                                .values(bounced_at=clock.now(), bounce_reason=report.reason))
    db.session.commit()
    return (Outcome.MARKED if result.rowcount else Outcome.ALREADY), delivery.id


def _ascii_address(address: str) -> str:
    """The address as it went on the envelope (a Japanese domain as punycode), lower case."""
    try:
        return envelope_address(address).lower()
    except ValueError:
        return address.lower()


def read(raw: bytes) -> list[tuple[Outcome, int | None]]:
    """Read one received message: parse it, mark what holds up, log every outcome (the delivery
    id and the status code only). Junk is logged and dropped, never raised; database errors are
    raised (the reader answers "try again later")."""
    try:
        reports = parse(raw)
    except Exception:  # a parser corner case must not stop the reader: the message is dropped
        log.warning("bounce reader: a message could not be parsed; dropped", exc_info=True)
        return [(Outcome.UNREADABLE, None)]
    if not reports:
        log.info("bounce reader: a message without a delivery report we can read; dropped")
        return [(Outcome.UNREADABLE, None)]
    outcomes = []
    for report in reports:
        outcome, delivery_id = mark(report)
        outcomes.append((outcome, delivery_id))
        if outcome is Outcome.MARKED:
            log.warning("bounce: delivery %s is undeliverable (%s)", delivery_id, report.status)
        else:
            log.info("bounce report (%s, %s) for delivery %s: %s", report.action[:20] or "no action",
                     report.status, delivery_id if delivery_id is not None else "none of ours", outcome.value)
    return outcomes
