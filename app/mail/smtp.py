"""The one SMTP client: connections reused for a batch of messages, several at once."""
import queue
import smtplib
import sys
import threading
from email.message import Message
from email.policy import Compat32
from email.utils import parseaddr


class _Wire(Compat32):
    """How messages are flattened for the wire: as built (``compat32``), with CRLF line ends.

    A short ASCII header (most of them: the encoded-word Subject and To included) is written as
    it is instead of through a ``Header`` object each, a tenth of a send's CPU. Header values
    never hold a line break (``render.build_message`` refuses them).
    """

    def fold_binary(self, name, value):
        if isinstance(value, str) and value.isascii() and len(name) + len(value) + 2 <= self.max_line_length:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE = _Wire(linesep="\r\n")


class SmtpSender:
    """Send many messages over one SMTP connection, reconnecting once if the server drops it."""

    def __init__(self, config):
        self.host = config["SMTP_HOST"]
        self.port = config["SMTP_PORT"]
        self.username = config["SMTP_USERNAME"]
        self.password = config["SMTP_PASSWORD"]
        self.starttls = config["SMTP_STARTTLS"]
        self.timeout = config["SMTP_TIMEOUT"]
        # Bounces (DSNs) go to the envelope sender: the address the bounce reader owns, when set.
        self.envelope_from = config.get("MAIL_BOUNCE_ADDRESS") or parseaddr(config["MAIL_FROM"])[1]
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                conn.starttls()
            if self.username:
                conn.login(self.username, self.password)
        except Exception:
            conn.close()
            raise
        return conn

    def send_bytes(self, data: bytes, recipient: str) -> None:
        """Send one flattened message to ``recipient`` (the envelope: never derived from headers).

        Raises ``smtplib.SMTPException``/``OSError`` on failure.
        """
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.sendmail(self.envelope_from, [recipient], data)
        except smtplib.SMTPServerDisconnected:
            # The server closed an idle connection between two messages: reconnect once.
            self._conn = self._connect()
            self._conn.sendmail(self.envelope_from, [recipient], data)

    def close(self) -> None:
        """Say QUIT and close the connection, if open."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._conn = None


class SmtpLanes:
    """Send over ``size`` SMTP connections at once, each in a thread of its own, while the
    caller renders the next messages.

    A worker sending one message at a time spends about three quarters of its time waiting for
    the server's four replies (MAIL, RCPT, DATA, end of data). Here the caller ``submit``s
    ready bytes and goes on rendering; a lane thread only does socket I/O, which releases the
    GIL. Results come back to the caller (``finished``), which marks the rows: database work
    stays in the caller's thread. ``submit`` blocks while every lane is busy and ``size``
    more messages wait, so at most ``2 × size`` messages are in flight.

    While lanes are open the interpreter's switch interval is lowered from 5 ms to 0.5 ms: a
    lane whose reply arrived must get the GIL from the rendering thread quickly, or it idles
    for the whole interval after every reply (why a single sender thread used to be slower).
    """

    SWITCH_INTERVAL = 0.0005

    def __init__(self, config, size: int):
        self._todo: queue.Queue = queue.Queue(maxsize=size)
        self._done: queue.Queue = queue.Queue()
        self._in_flight = 0
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self.SWITCH_INTERVAL, self._switch_interval))
        self._threads = [threading.Thread(target=self._lane, args=(SmtpSender(config),), daemon=True,
                                          name=f"smtp-lane-{i}") for i in range(size)]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> "SmtpLanes":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _lane(self, sender: SmtpSender) -> None:
        with sender:
            while (job := self._todo.get()) is not None:
                item, data, recipient = job
                try:
                    sender.send_bytes(data, recipient)
                except (smtplib.SMTPException, OSError) as exc:
                    sender.close()  # start afresh for the next message
                    self._done.put((item, exc))
                else:
                    self._done.put((item, None))

    def submit(self, item, message: Message, recipient: str) -> None:
        """Queue ``message`` for ``recipient``; ``item`` comes back from ``finished``."""
        self._todo.put((item, message.as_bytes(policy=WIRE), recipient))
        self._in_flight += 1

    def finished(self, wait: bool = False):
        """Yield ``(item, error or None)`` for every message sent or failed so far (with
        ``wait``: until none is in flight)."""
        while self._in_flight:
            try:
                result = self._done.get(block=wait)
            except queue.Empty:
                return
            self._in_flight -= 1
            yield result

    def close(self) -> None:
        """Let the lanes finish what they were given, say QUIT, and stop them."""
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join()
        sys.setswitchinterval(self._switch_interval)
