"""The bounce reader's SMTP server: it owns the bounce address and hands each message it receives
to ``app.mail.bounces.read``. Run: ``flask --app wsgi bounces serve [--host H] [--port P]``.

It takes mail for that one address only (any other recipient: 550, so it is never an open
relay), at most ``bounces.MAX_BYTES`` a message (552 beyond: aiosmtpd's ``data_size_limit``),
and answers 250 once a message is read, also when the message was junk (it is logged and
dropped: the sender could not do better by sending it again). Only when the database does not
answer does it say 451, so the relay keeps the bounce and tries again later.
"""
import asyncio
import logging
import signal
import threading

from aiosmtpd.controller import Controller
from sqlalchemy.exc import SQLAlchemyError

from app.mail import bounces
from app.mail.smtp import envelope_sender

log = logging.getLogger(__name__)


class BounceHandler:
    """aiosmtpd handler: the bounce address only; each message read in a thread of its own, in a
    fresh app context (a fresh database session), so the server's event loop never waits on the
    database."""

    def __init__(self, app):
        self.app = app
        self.address = envelope_sender(app.config).lower()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() != self.address:
            return "550 5.1.1 This server only takes bounces for its own address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._read, envelope.original_content
                                                             or envelope.content)
        except SQLAlchemyError:
            log.exception("bounce reader: the database did not answer; the sender is asked to try again")
            return "451 4.3.0 Temporary failure, please try again later"
        return "250 OK: read"

    def _read(self, raw: bytes) -> None:
        with self.app.app_context():
            bounces.read(raw)


class BounceServer:
    """The reader on ``host:port`` in a thread of its own (aiosmtpd's ``Controller``)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8026):
        self.handler = BounceHandler(app)
        self.controller = Controller(self.handler, hostname=host, port=port, data_size_limit=bounces.MAX_BYTES)

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> "BounceServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def serve(app, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (honcho stops its processes with SIGTERM)."""
    server = BounceServer(app, host, port).start()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"bounce reader on {host}:{port}, for {server.handler.address}", flush=True)
    try:
        stopped.wait()
    finally:
        server.stop()
