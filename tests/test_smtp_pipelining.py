"""SMTP pipelining (RFC 2920): MAIL, RCPT and DATA sent together to a relay that offers it, and
every refusal raising what ``smtplib``'s own ``sendmail`` raises for it.

The expectations come from ``smtplib.SMTP.sendmail`` against the same aiosmtpd server without
PIPELINING, not from the code under test.
"""
import smtplib
import socket
import threading

import pytest
from aiosmtpd.controller import Controller

from app.mail.smtp import PipeliningSMTP
from devtools.mail_sink import Pipelining
from tests.conftest import free_port

SENDER = "no-reply@booking.test"
MESSAGE = b"Subject: pipelined\r\n\r\nfirst line\r\n.a line that starts with a dot\r\n..and two\r\nlast line"


class Scripted:
    """An aiosmtpd handler whose replies are chosen by the addresses: ``mail451@`` as the sender
    refuses MAIL with 451; ``rcpt550@`` … as a recipient refuses RCPT; ``data554@`` … refuses the
    message at its end. Every accepted message's recipients and body are kept."""

    def __init__(self):
        self.received: list[tuple[list[str], bytes]] = []

    @staticmethod
    def _refusal(address: str, prefix: str) -> str | None:
        local = address.split("@")[0]
        return f"{local[len(prefix):]} refused by the test" if local.startswith(prefix) else None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if refusal := self._refusal(address, "mail"):
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if refusal := self._refusal(address, "rcpt"):
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if refusal := self._refusal(envelope.rcpt_tos[0], "data"):
            return refusal
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def servers():
    """The same ``Scripted`` handler served twice: without PIPELINING, and offering it."""
    plain, piped = Scripted(), Scripted()
    controllers = [Controller(plain, hostname="127.0.0.1", port=free_port()),
                   Controller(Pipelining(piped), hostname="127.0.0.1", port=free_port())]
    for controller in controllers:
        controller.start()
    yield (plain, controllers[0].port), (piped, controllers[1].port)
    for controller in controllers:
        controller.stop()


def _outcome(send) -> tuple:
    try:
        send()
    except smtplib.SMTPRecipientsRefused as exc:
        return "SMTPRecipientsRefused", {rcpt: code for rcpt, (code, _) in exc.recipients.items()}
    except smtplib.SMTPResponseException as exc:
        return type(exc).__name__, exc.smtp_code
    return "sent", None


def test_the_server_offers_pipelining_and_the_client_uses_it(servers):
    (_, plain_port), (piped, piped_port) = servers
    with PipeliningSMTP("127.0.0.1", plain_port) as client:
        client.ehlo()
        assert not client.has_extn("pipelining")  # aiosmtpd alone does not offer it
    with PipeliningSMTP("127.0.0.1", piped_port) as client:
        client.ehlo()
        assert client.has_extn("pipelining")
        client.send_one(SENDER, "guest@example.com", MESSAGE)
    # Dot-stuffed on the wire and unstuffed by the server: the body arrives as it was written.
    assert piped.received == [(["guest@example.com"], MESSAGE + b"\r\n")]


@pytest.mark.parametrize("sender, recipient", [
    (SENDER, "guest@example.com"),
    ("mail451@booking.test", "guest@example.com"),     # MAIL refused, for now
    ("mail553@booking.test", "guest@example.com"),     # MAIL refused for good
    ("mail421@booking.test", "guest@example.com"),     # the relay closes the channel at MAIL
    (SENDER, "rcpt550@example.com"),                   # no such user
    (SENDER, "rcpt452@example.com"),                   # too many recipients, for now
    (SENDER, "rcpt421@example.com"),
    (SENDER, "data554@example.com"),                   # refused at the end of the message
    (SENDER, "data451@example.com"),
    (SENDER, "data421@example.com"),
])
def test_every_refusal_raises_what_sendmail_raises_and_the_connection_goes_on(servers, sender, recipient):
    (plain, plain_port), (piped, piped_port) = servers
    outcomes = []
    for port, send in ((plain_port, lambda client: client.sendmail(sender, [recipient], MESSAGE)),
                       (piped_port, lambda client: client.send_one(sender, recipient, MESSAGE))):
        client = PipeliningSMTP("127.0.0.1", port)
        outcome = _outcome(lambda: send(client))
        # After a refusal the same connection takes the next message, unless a 421 closed it.
        closed = client.sock is None
        if closed:
            client = PipeliningSMTP("127.0.0.1", port)
        client.send_one(SENDER, "next@example.com", MESSAGE)
        client.quit()
        outcomes.append((outcome, closed))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1] == ("421" in sender + recipient)
    delivered = ([recipient] if outcomes[0][0][0] == "sent" else []) + ["next@example.com"]
    assert [rcpts for rcpts, _ in plain.received] == [[to] for to in delivered]
    assert [rcpts for rcpts, _ in piped.received] == [[to] for to in delivered]


class OneRoundTrip(threading.Thread):
    """A hand-scripted SMTP server that answers nothing until MAIL, RCPT and DATA have all
    arrived: a client waiting for the reply to MAIL before sending RCPT never gets one (and fails
    on its timeout). ``data_reply`` is its answer to the three, e.g. a server that says 354 to
    DATA after refusing the recipient."""

    def __init__(self, replies: bytes = b"250 OK\r\n250 OK\r\n354 go on\r\n"):
        super().__init__(daemon=True)
        self.replies = replies
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[bytes] = []
        self.body = b""

    def run(self):
        with self.listener:
            conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 scripted\r\n")
            lines.readline()  # EHLO
            conn.sendall(b"250-scripted\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
            self.commands = [lines.readline() for _ in range(3)]
            conn.sendall(self.replies)
            while (line := lines.readline()) != b".\r\n":
                self.body += line
            conn.sendall(b"250 queued\r\n")
            for line in iter(lines.readline, b""):  # RSET, QUIT
                conn.sendall(b"221 bye\r\n" if line.startswith(b"QUIT") else b"250 OK\r\n")


def test_mail_rcpt_and_data_go_in_one_round_trip():
    server = OneRoundTrip()
    server.start()
    with PipeliningSMTP("127.0.0.1", server.port, timeout=5) as client:
        client.send_one(SENDER, "guest@example.com", MESSAGE)
    server.join(5)
    assert server.commands == [f"MAIL FROM:<{SENDER}> SIZE={len(MESSAGE)}\r\n".encode(),
                               b"RCPT TO:<guest@example.com>\r\n", b"DATA\r\n"]
    assert server.body == MESSAGE.replace(b"\r\n.", b"\r\n..") + b"\r\n"


def test_a_server_that_takes_data_after_refusing_the_recipient_gets_an_empty_message_ended():
    server = OneRoundTrip(b"250 OK\r\n550 5.1.1 no such user\r\n354 go on\r\n")
    server.start()
    with PipeliningSMTP("127.0.0.1", server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_one(SENDER, "nobody@example.com", MESSAGE)
    server.join(5)
    assert refused.value.recipients == {"nobody@example.com": (550, b"5.1.1 no such user")}
    assert server.body == b""  # nothing of the message went after a refused recipient
