"""The sink as a relay that accepts, then bounces: for the recipients of a reserved test address it
takes the message (250), keeps it out of the mailbox, and a moment later sends the envelope
sender a delivery status notification as a real relay does (RFC 3464: a ``multipart/report`` with
the ``message/delivery-status`` fields and the returned email's headers as ``text/rfc822-headers``,
from ``MAILER-DAEMON``, with the null sender ``<>``) to the bounce reader (``flask --app wsgi
bounces serve``, port 8026 in ``make run``).

Bounced recipients: any address at ``bounce.test`` (or a subdomain; the booking form refuses the
``.test`` domain, so this one is for tests) and any address whose local part starts with
``unknown-`` (``unknown-taro@example.com``: type it in the booking form of ``make run``).
"""
import asyncio
import smtplib
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

from devtools.mail_sink.wrapping import HandlerWrapper

#: The domain whose every address bounces, and the local part prefix that does too.
BOUNCE_DOMAIN = "bounce.test"
UNKNOWN_PREFIX = "unknown-"
#: Where ``make run``'s bounce reader listens (the Procfile's ``bounces`` process).
READER = ("127.0.0.1", 8026)
#: Seconds between accepting a message and bouncing it: a relay tries the receiving server after
#: it has answered us, so the bounce always comes after the 250.
DELAY = 2.0


def bounces(address: str) -> bool:
    """Whether the sink bounces mail to ``address``."""
    local, _, domain = address.lower().rpartition("@")
    return domain == BOUNCE_DOMAIN or domain.endswith("." + BOUNCE_DOMAIN) or local.startswith(UNKNOWN_PREFIX)


def compose_dsn(envelope_from: str, recipient: str, original: bytes, reporting_mta: str = "sink.localhost") -> bytes:
    """A Postfix-style failure report to ``envelope_from`` about ``recipient``, returning
    ``original``'s headers (``RET=HDRS``, what most relays return by default)."""
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("ascii", "replace")
    dsn = MIMEMultipart("report", report_type="delivery-status")
    dsn["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    dsn["To"] = envelope_from
    dsn["Subject"] = "Undelivered Mail Returned to Sender"
    dsn["Date"] = formatdate(localtime=True)
    dsn["Message-ID"] = make_msgid(domain=reporting_mta)
    dsn["Auto-Submitted"] = "auto-replied"
    notice = MIMEText(
        f"This is the mail system at host {reporting_mta}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        f"<{recipient}>: host mx.{recipient.rpartition('@')[2]} said: 550 5.1.1 <{recipient}>:\n"
        "    Recipient address rejected: User unknown in virtual mailbox table\n", "plain", "us-ascii")
    notice["Content-Description"] = "Notification"
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_message["Arrival-Date"] = formatdate(localtime=True)
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Remote-MTA"] = f"dns; mx.{recipient.rpartition('@')[2]}"
    per_recipient["Diagnostic-Code"] = (f"smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
                                        "User unknown in virtual mailbox table")
    report = MIMEBase("message", "delivery-status")
    report.set_payload([per_message, per_recipient])
    report["Content-Description"] = "Delivery report"
    returned = MIMEText(head + "\n", "rfc822-headers", "us-ascii")
    returned["Content-Description"] = "Undelivered Message Headers"
    for part in (notice, report, returned):
        dsn.attach(part)
    return dsn.as_bytes(policy=dsn.policy.clone(linesep="\r\n"))  # SMTP's line ends (smtplib sends bytes as they are)


class LateBounces(HandlerWrapper):
    """A sink handler wrapper: the messages of bounced recipients (``bounces``) are accepted and
    bounced ``delay`` seconds later to the bounce reader at ``reader``; the rest go to ``handler``
    (its other hooks too)."""

    def __init__(self, handler, reader: tuple[str, int] = READER, delay: float = DELAY):
        super().__init__(handler)
        self.reader = reader
        self.delay = delay


    async def handle_DATA(self, server, session, envelope):
        # A bounce is never bounced (RFC 3464 §2: the null sender gets none).
        bounced = [rcpt for rcpt in envelope.rcpt_tos if bounces(rcpt)] if envelope.mail_from else []
        for recipient in bounced:
            asyncio.get_running_loop().create_task(self._bounce_later(envelope.mail_from, recipient,
                                                                      envelope.original_content or envelope.content))
        envelope.rcpt_tos = [rcpt for rcpt in envelope.rcpt_tos if rcpt not in bounced]
        if not envelope.rcpt_tos:
            return "250 OK: queued"
        return await self.handler.handle_DATA(server, session, envelope)

    async def _bounce_later(self, envelope_from: str, recipient: str, original: bytes) -> None:
        await asyncio.sleep(self.delay)
        dsn = compose_dsn(envelope_from, recipient, original)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._send, envelope_from, dsn)
        except (smtplib.SMTPException, OSError) as exc:  # as a relay would, it gives up on a lost bounce
            print(f"late bounce for {recipient} not delivered to {self.reader[0]}:{self.reader[1]}: {exc}", flush=True)
        else:
            print(f"late bounce for {recipient} delivered to {envelope_from}", flush=True)

    def _send(self, envelope_from: str, dsn: bytes) -> None:
        with smtplib.SMTP(*self.reader, timeout=10) as reader:
            reader.sendmail("", [envelope_from], dsn)
