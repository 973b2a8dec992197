"""Reading what the embedded SMTP sink received (a Maildir written by devtools.mail_sink)."""
import mailbox
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path


@dataclass
class ReceivedMail:
    key: str
    subject: str
    to: str
    date: str
    text: str
    html: str
    raw: str


def _parse(key: str, raw: bytes) -> ReceivedMail:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return ReceivedMail(
        key=key,
        subject=str(msg["Subject"] or ""),
        to=str(msg["To"] or ""),
        date=str(msg["Date"] or ""),
        text=text.get_content() if text else "",
        html=html.get_content() if html else "",
        raw=raw.decode("utf-8", "replace"),
    )


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
