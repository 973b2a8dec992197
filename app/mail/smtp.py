"""The one SMTP client: a connection reused for a batch of messages."""
import smtplib
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
        self.envelope_from = parseaddr(config["MAIL_FROM"])[1]
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

    def send(self, message: Message, recipient: str) -> None:
        """Send one message to ``recipient`` (the envelope: never derived from headers).

        Raises ``smtplib.SMTPException``/``OSError`` on failure.
        """
        data = message.as_bytes(policy=WIRE)
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
