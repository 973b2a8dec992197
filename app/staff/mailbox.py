"""Reading what the embedded SMTP sink received (a Maildir written by devtools.mail_sink).

Password-reset links are masked: whoever reads a host's reset email could take over that account,
and staff are not the host. The source is shown decoded, so that no link hides from the mask in
base64 or quoted-printable.
"""
import mailbox
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from app import clock

#: The token of a password-reset link (``…/reset/<token>``).
_RESET_TOKEN = re.compile(r"""(/reset/)[^/?#&\s"'<>\\]+""", re.IGNORECASE)
MASK = "[redacted]"


def mask_reset_links(text: str) -> str:
    """``text`` with the token of every password-reset link replaced by ``[redacted]``."""
    return _RESET_TOKEN.sub(r"\1" + MASK, text)


def _source(msg) -> str:
    """Every part's headers and its decoded text (other parts by size), reset links masked."""
    lines = []
    for part in msg.walk():
        lines.extend(f"{name}: {value}" for name, value in part.items())
        lines.append("")
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text":
            lines.append(part.get_content())
        else:
            lines.append(f"[{len(part.get_payload(decode=True) or b'')} bytes]")
        lines.append("")
    return mask_reset_links("\n".join(lines))


@dataclass
class ReceivedMail:
    key: str
    subject: str
    to: str
    #: The Date header as sent.
    date: str
    #: The same moment, aware (UTC when the header gives no zone); None without a readable Date.
    sent_at: datetime | None
    text: str
    html: str
    raw: str


def _date_of(msg) -> datetime | None:
    """The Date header as an aware datetime (``-0000``, "zone unknown", is read as UTC)."""
    try:
        moment = parsedate_to_datetime(str(msg["Date"]))
    except (TypeError, ValueError):
        return None
    return clock.as_utc(moment) if moment.tzinfo is None else moment


def _parse(key: str, raw: bytes) -> ReceivedMail:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return ReceivedMail(
        key=key,
        subject=str(msg["Subject"] or ""),
        to=str(msg["To"] or ""),
        date=str(msg["Date"] or ""),
        sent_at=_date_of(msg),
        text=mask_reset_links(text.get_content()) if text else "",
        html=mask_reset_links(html.get_content()) if html else "",
        raw=_source(msg),
    )


def received_count(directory: str) -> int:
    """How many messages the sink holds."""
    if not Path(directory, "cur").exists():
        return 0
    return len(mailbox.Maildir(directory, create=False))


def received_mail(directory: str, limit: int = 100) -> list[ReceivedMail]:
    """The newest messages first (an empty list when the sink has not received anything)."""
    if not Path(directory, "cur").exists():
        return []
    box = mailbox.Maildir(directory, create=False)
    newest = sorted(box.items(), key=lambda item: item[1].get_date(), reverse=True)[:limit]
    return [_parse(key, message.as_bytes()) for key, message in newest]


def one_mail(directory: str, key: str) -> ReceivedMail | None:
    """One received message by key."""
    if not Path(directory, "cur").exists():
        return None
    box = mailbox.Maildir(directory, create=False)
    try:
        return _parse(key, box.get_bytes(key))
    except KeyError:
        return None
