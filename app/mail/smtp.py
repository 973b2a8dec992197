"""The one SMTP client: connections reused for a batch of messages, several at once, as many as
the relay's reply time calls for."""
import collections
import functools
import logging
import math
import queue
import re
import smtplib
import threading
import time
from email.message import Message
from email.policy import Compat32
from email.utils import parseaddr

from app.mail.relay_places import RelayPlaces


class _Wire(Compat32):
    """How messages are flattened for the wire: as built (``compat32``), with CRLF line ends.

    A short ASCII header (most of them: the encoded-word Subject and To included) is written as
    it is instead of through a ``Header`` object each (a measurable part of a send's CPU:
    bench/README.md); a long one (a lesson's Subject, the same for each of its guests) is folded
    once. Header values never hold a line break (``render.build_message`` refuses them).
    """

    def fold_binary(self, name, value):
        if isinstance(value, str) and value.isascii():
            if len(name) + len(value) + 2 <= self.max_line_length:
                return f"{name}: {value}{self.linesep}".encode("ascii")
            return _folded(self, name, value)  # a long Subject: the same for every guest of a lesson
        return super().fold_binary(name, value)


@functools.lru_cache(maxsize=256)
def _folded(policy: Compat32, name: str, value: str) -> bytes:
    return Compat32.fold_binary(policy, name, value)


WIRE = _Wire(linesep="\r\n")


def wire_bytes(message: Message) -> bytes:
    """``message.as_bytes(policy=WIRE)``: the same bytes, at a fraction of the CPU.

    The email package's generator writes a base64 body line by line, two writes per 76
    characters, through several layers per write: a measurable part of a send's CPU
    (bench/README.md). ``render.build_message`` builds messages of headers and ASCII payloads
    (base64) in multiparts with a boundary; those are written here in one piece each, and any
    other message goes through the generator.
    """
    flattened = _flattened(message)
    return flattened if flattened is not None else message.as_bytes(policy=WIRE)


def _flattened(message: Message) -> bytes | None:
    """What the generator writes for ``message``; None for a message it writes in another way."""
    if message.get_unixfrom() is not None or message.preamble is not None or message.epilogue is not None:
        return None
    head = b"".join(WIRE.fold_binary(name, value) for name, value in message.raw_items()) + b"\r\n"
    payload = message.get_payload()
    if isinstance(payload, list):
        boundary = message.get_boundary()
        parts = [_flattened(part) for part in payload]
        if not boundary or not parts or None in parts:
            return None
        delimiter = f"--{boundary}".encode("ascii")
        return b"".join([head, delimiter, b"\r\n", (b"\r\n" + delimiter + b"\r\n").join(parts),
                         b"\r\n", delimiter, b"--\r\n"])
    # (The generator writes a line starting "From " as ">From ": never in base64.)
    if isinstance(payload, str) and payload.isascii() and "\r" not in payload and "From " not in payload:
        return head + payload.replace("\n", "\r\n").encode("ascii")
    return None


log = logging.getLogger(__name__)


#: A line of the message that starts with a dot, doubled on the wire (RFC 5321 4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")


class PipeliningSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that sends MAIL, RCPT and DATA together when the server offers PIPELINING
    (RFC 2920; every common relay does): two round trips per message instead of four, which
    counts against a relay tens of milliseconds away, and fewer wake-ups on both sides.

    ``smtplib`` has no pipelining. ``send_one`` raises what ``sendmail`` raises for the same
    replies (``SMTPSenderRefused``, ``SMTPRecipientsRefused``, ``SMTPDataError``, closing the
    connection on a 421), so callers tell permanent from transient failures as before.
    """

    def send_one(self, sender: str, recipient: str, data: bytes) -> None:
        """Send ``data`` (a flattened message, CRLF line ends) from ``sender`` to ``recipient``."""
        self.ehlo_or_helo_if_needed()
        if not (self.does_esmtp and self.has_extn("pipelining")):
            self.sendmail(sender, [recipient], data)
            return
        size = f" SIZE={len(data)}" if self.has_extn("size") else ""
        self.send(f"MAIL FROM:{smtplib.quoteaddr(sender)}{size}\r\n"
                  f"RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n")
        replies = []
        for _ in range(3):
            replies.append(self.getreply())
            if replies[-1][0] == 421:  # the server closes the channel: no other reply follows
                self.close()
                raise self._refused(replies, sender, recipient)
        if [code for code, _ in replies] in ([250, 250, 354], [250, 251, 354]):
            quoted = _LEADING_DOT.sub(b"..", data)
            self.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
            code, reply = self.getreply()
            if code != 250:
                if code == 421:
                    self.close()
                else:
                    self._rset()
                raise smtplib.SMTPDataError(code, reply)
            return
        if replies[2][0] == 354:  # a server that took DATA after refusing MAIL or RCPT: end it empty
            self.send(b".\r\n")
            self.getreply()
        self._rset()
        raise self._refused(replies, sender, recipient)

    @staticmethod
    def _refused(replies: list, sender: str, recipient: str) -> smtplib.SMTPException:
        """What ``sendmail`` raises for the first refusal among the replies to MAIL, RCPT and DATA
        (fewer when a 421 closed the channel)."""
        if replies[0][0] != 250:
            return smtplib.SMTPSenderRefused(*replies[0], sender)
        if replies[1][0] not in (250, 251):
            return smtplib.SMTPRecipientsRefused({recipient: replies[1]})
        return smtplib.SMTPDataError(*replies[2])


class LaneLost(RuntimeError):
    """A message handed to the lanes that no lane took: every lane had stopped (a bug; logged)."""


class RelayFull(smtplib.SMTPConnectError):
    """Every connection the relay allows us is open (``MAIL_SMTP_RELAY_CONNECTIONS``, counted
    across the workers): what a relay over its limit answers, without asking it."""

    def __init__(self, limit: int):
        super().__init__(421, f"4.7.0 all {limit} connections the relay allows are in use by the workers")


def refused_connection(exc: BaseException) -> bool:
    """True for a relay's 421 instead of its greeting ("Too many connections", or going down):
    nothing of the message was sent, so it may go over another connection at once."""
    return isinstance(exc, smtplib.SMTPConnectError) and exc.smtp_code == 421


def envelope_sender(config) -> str:
    """Every email's envelope sender, where bounces (DSNs) come back: ``MAIL_BOUNCE_ADDRESS`` (the
    bounce reader's, ``app.mail.bounces``) when set, else ``MAIL_FROM``'s address."""
    return config.get("MAIL_BOUNCE_ADDRESS") or parseaddr(config["MAIL_FROM"])[1]


class SmtpSender:
    """Send many messages over one SMTP connection, reconnecting once if the server drops it."""

    def __init__(self, config, places: RelayPlaces | None = None):
        """
        :param places: the relay's places shared by every worker: a connection takes one before
            it opens and gives it back when it closes (``app.mail.relay_places``).
        """
        self.host = config["SMTP_HOST"]
        self.port = config["SMTP_PORT"]
        self.username = config["SMTP_USERNAME"]
        self.password = config["SMTP_PASSWORD"]
        self.starttls = config["SMTP_STARTTLS"]
        self.timeout = config["SMTP_TIMEOUT"]
        self.envelope_from = envelope_sender(config)
        self._conn: PipeliningSMTP | None = None
        self._places = places
        self._place: str | None = None
        self._renew_at = 0.0
        #: Set by ``SmtpLanes`` while the relay keeps refusing this connection (421).
        self.gave_up = False

    def __enter__(self) -> "SmtpSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> PipeliningSMTP:
        if self._places is not None and self._place is None:
            self._place = self._places.take()
            if self._place is None:
                raise RelayFull(self._places.limit)
            self._renew_at = time.monotonic() + self._places.TTL / 3
        conn = PipeliningSMTP(self.host, self.port, timeout=self.timeout)
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
            self._conn.send_one(self.envelope_from, recipient, data)
        except smtplib.SMTPServerDisconnected:
            # The server closed an idle connection between two messages: reconnect once.
            self._conn = self._connect()
            self._conn.send_one(self.envelope_from, recipient, data)
        self.keep_place()

    def keep_place(self) -> None:
        """Renew this connection's place when it is due (also while it waits for a message); a
        place that lapsed (a send stuck for longer than its lease) may be another's by now: close,
        and take one afresh for the next message."""
        if self._place is None or time.monotonic() < self._renew_at:
            return
        if self._places.renew(self._place):
            self._renew_at = time.monotonic() + self._places.TTL / 3
        else:
            self._place = None
            self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if open; give its place back."""
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._conn = None
        if self._place is not None:
            self._places.give_back(self._place)
            self._place = None


class SmtpLanes:
    """Send over several SMTP connections at once, each in a thread of its own, while the caller
    renders the next messages; open more connections while the relay is slower than rendering.

    The caller ``submit``s ready bytes and goes on rendering; a lane thread only does socket I/O,
    which releases the GIL. Results come back to the caller (``finished``), which marks the rows:
    database work stays in the caller's thread. ``submit`` blocks while two messages per lane are
    in flight (one sending, one waiting).

    How many lanes: a relay answers each message in a reply time R (the local sink in a
    millisecond, a cloud relay in tens to hundreds) and the caller needs a time P to render the next
    one, so R / P lanes keep the caller busy and one more covers the jitter. Both are measured
    as the messages go (R: a low percentile of recent sends; P: the median time between two
    ``submit``s, not counting the time ``submit`` waited). But a busy server also answers late,
    and there more connections only queue more messages at it (a longer R, asking for still more
    lanes). So the lanes double, up to ``ceiling``, only while the last doubling raised the rate
    of messages sent by a quarter or more *and* left the reply time about as it was: a distant
    relay's rate doubles with them at the same reply time; a busy server's does not, and there
    the last doubling is undone (more threads cost CPU for nothing). The reply time tells when
    several workers share a busy server: one worker's doubling then takes a share of the others'
    (its own rate rises) while every reply waits longer in the server's queue.

    A relay over its connection limit answers 421 instead of its greeting: that lane gives its
    message to the others and stops, and the ceiling drops to the lanes left (the relay's limit is
    reached). The last lane instead waits and tries again, a few times, before the message
    counts as failed (the outbox retries it later). The limit is the relay's, not a worker's: with
    ``places``, a connection first takes one of the places every worker shares
    (``app.mail.relay_places``), and a lane that finds none left is told as by a 421, before asking
    the relay.

    The lanes need the interpreter's switch interval lowered, or a lane whose reply arrived waits
    up to 5 ms for the rendering thread to give up the GIL: ``worker.py`` sets it once for the
    worker process (a library that changes process-wide state is a surprise to its callers).
    """

    #: Recent reply times and render times that sizing looks at.
    SAMPLES = 32
    #: Samples of each needed before the first resizing (the first send also connects).
    WARM_UP = 8
    #: Messages sent per lane, and seconds, after a resizing before the rate is compared with the
    #: last one (fewer make a noisy rate: a busy server next door answers in about a millisecond).
    WINDOW_PER_LANE = 3
    WINDOW_SECONDS = 0.25
    #: How much more a doubling must send for the lanes to double again (twice as much, were
    #: the relay's distance the only limit).
    PAYOFF = 1.25
    #: How much longer replies may take after a doubling for the lanes to double again (a distant
    #: relay's reply time is its distance, whatever the lanes; a busy server's grows with them).
    REPLY_GROWTH = 1.3
    #: The last lane refused with 421 waits this long before trying again, doubling each time.
    REFUSED_WAIT = 0.2
    REFUSED_TRIES = 6
    #: While waiting for a result, look this often whether any lane is still running.
    LIVENESS_CHECK = 1.0
    #: A lane waiting for a message looks this often whether its place at the relay needs renewing.
    IDLE_CHECK = 2.0

    def __init__(self, config, size: int | None = None, ceiling: int | None = None,
                 places: RelayPlaces | None = None):
        """
        :param size: lanes opened at once (default ``MAIL_SMTP_CONNECTIONS``).
        :param ceiling: the most lanes ever open at once (default ``MAIL_SMTP_MAX_CONNECTIONS``).
        :param places: the relay's connection limit shared with the other workers: a lane that
            finds no place left is told as by a relay's 421 (``RelayFull``).
        """
        self._config = config
        self._places = places
        self.ceiling = max(1, ceiling or config["MAIL_SMTP_MAX_CONNECTIONS"])
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Semaphore(0)  # two messages in flight per lane
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._live = 0  # lanes running (not retired), under _lock
        self._replies: collections.deque = collections.deque(maxlen=self.SAMPLES)  # appended by lanes
        self._renders: collections.deque = collections.deque(maxlen=self.SAMPLES)
        self._last_submit: float | None = None
        self._in_flight = 0
        self._sent = 0  # messages sent (under _lock)
        self._resized: tuple[int, float, int] | None = None  # (sent, when, lanes before) at the last resizing
        self._last_rate: float | None = None
        self._last_reply: float | None = None  # the reply time in the window of ``_last_rate``
        self._settled = False  # a doubling did not pay off: no more lanes
        self._open_lanes(min(size or config["MAIL_SMTP_CONNECTIONS"], self.ceiling))

    def __enter__(self) -> "SmtpLanes":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open_lanes(self, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._live += count
        for _ in range(count):
            thread = threading.Thread(target=self._lane, daemon=True, name=f"smtp-lane-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()
        self._room.release(2 * count)

    def _lane(self) -> None:
        retired = False
        try:
            with SmtpSender(self._config, self._places) as sender:
                while (job := self._next(sender)) is not None:
                    if self._send(sender, job) == "retire":
                        retired = True
                        return
        except BaseException:  # a bug: the lane stops, and ``finished`` notices (never a hang)
            log.exception("an SMTP lane stopped on an unexpected error")
        finally:
            if not retired:
                with self._lock:
                    self._live -= 1

    def _next(self, sender: SmtpSender):
        """The next job, keeping the connection's place at the relay while waiting for it."""
        while True:
            try:
                return self._todo.get(timeout=self.IDLE_CHECK)
            except queue.Empty:
                sender.keep_place()

    def _send(self, sender: SmtpSender, job) -> str | None:
        """Send one job and report its result; ``"retire"`` when the relay refused this lane."""
        item, data, recipient = job
        # Once the last lane gave up on a message, the next ones fail at once until one goes
        # through: a relay refusing for minutes must not hold a batch for seconds per message.
        tries = 1 if sender.gave_up else self.REFUSED_TRIES
        for attempt in range(tries):
            started = time.monotonic()
            try:
                sender.send_bytes(data, recipient)
            except (smtplib.SMTPException, OSError) as exc:
                sender.close()  # start afresh for the next message
                if refused_connection(exc):
                    if self._retire(exc):
                        self._todo.put(job)  # nothing of it was sent: another lane takes it
                        return "retire"
                    if attempt + 1 < tries:
                        time.sleep(self.REFUSED_WAIT * 2 ** attempt)
                        continue
                    sender.gave_up = True
                self._report(item, exc)
            except Exception as exc:  # one odd message must not stop the lane or leave its result untold
                log.exception("sending a message failed unexpectedly")
                sender.close()
                self._report(item, exc)
            else:
                self._replies.append(time.monotonic() - started)
                sender.gave_up = False
                with self._lock:
                    self._sent += 1
                self._report(item, None)
            return None
        return None

    def _retire(self, refusal: smtplib.SMTPConnectError) -> bool:
        """Stop this lane unless it is the last one; the relay's limit is reached: open no more."""
        with self._lock:
            if self._live <= 1:
                return False
            self._live -= 1
            self.ceiling = self._live
        for _ in range(2):  # its share of messages in flight
            self._room.acquire(blocking=False)
        why = "no place left at the relay" if isinstance(refusal, RelayFull) else "the SMTP relay refused a connection"
        log.info("%s (%s); going on with %s", why, refusal, self._live)
        return True

    def _report(self, item, error) -> None:
        self._done.put((item, error))
        self._room.release()

    def _wanted(self) -> int:
        """Lanes that keep the caller rendering: reply time ÷ render time, plus one."""
        if len(self._replies) < self.WARM_UP or len(self._renders) < self.WARM_UP:
            return 0
        replies, renders = sorted(self._replies), sorted(self._renders)
        reply, render = replies[len(replies) // 4], renders[len(renders) // 2]
        return math.ceil(reply / max(render, 1e-5)) + 1

    def _resize(self) -> None:
        """Double the lanes (up to what the reply time asks for and the ceiling) while doubling pays
        off; undo the last growth when it did not."""
        live = self._live
        if self._settled or live >= self.ceiling or self._wanted() <= live:
            return
        now = time.monotonic()
        if self._resized is None:  # first the rate with the lanes opened at once
            self._resized = (self._sent, now, live)
            return
        sent_then, then, before = self._resized
        sent = self._sent - sent_then
        if sent < self.WINDOW_PER_LANE * live or now - then < self.WINDOW_SECONDS:
            return  # too soon to tell
        rate = sent / (now - then)
        recent = sorted(list(self._replies)[-sent:])  # the replies since the last resizing
        reply = recent[len(recent) // 4]
        if self._last_rate is not None and (rate < self._last_rate * self.PAYOFF
                                            or reply > self._last_reply * self.REPLY_GROWTH):
            # The server, not its distance, is the limit: the lanes added cost CPU for nothing.
            self._settled = True
            self._close_lanes(live - before)
            log.info("SMTP lanes back to %s: %.0f messages/s with %s (replies %.1f ms), %.0f with %s (%.1f ms)",
                     before, rate, live, 1000 * reply, self._last_rate, before, 1000 * self._last_reply,
                     extra={"lanes": before})
            return
        self._last_rate, self._last_reply = rate, reply
        self._resized = (self._sent, now, live)
        lanes = min(2 * live, self._wanted(), self.ceiling)
        log.info("SMTP lanes: %s → %s (%.0f messages/s, replies take %.1f ms, rendering %.1f ms)", live, lanes,
                 rate, 1000 * reply, 1000 * sorted(self._renders)[len(self._renders) // 2], extra={"lanes": lanes})
        self._open_lanes(lanes - live)

    def _close_lanes(self, count: int) -> None:
        """Stop ``count`` lanes once they have sent what is already queued, and their share of room."""
        for _ in range(count):
            self._todo.put(None)
        for _ in range(2 * count):
            self._room.acquire(blocking=False)

    def submit(self, item, message: Message, recipient: str) -> None:
        """Queue ``message`` for ``recipient``; ``item`` comes back from ``finished``."""
        data = wire_bytes(message)
        if self._last_submit is not None:
            self._renders.append(time.monotonic() - self._last_submit)
        self._resize()
        while not self._room.acquire(timeout=self.LIVENESS_CHECK):
            if not self._any_lane():
                break  # ``finished`` reports it lost
        self._todo.put((item, data, recipient))
        self._in_flight += 1
        self._last_submit = time.monotonic()

    def _any_lane(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def finished(self, wait: bool = False):
        """Yield ``(item, error or None)`` for every message sent or failed so far (with
        ``wait``: until none is in flight, or no lane is left to send them: ``LaneLost``)."""
        while self._in_flight:
            try:
                result = self._done.get(timeout=self.LIVENESS_CHECK) if wait else self._done.get_nowait()
            except queue.Empty:
                if not wait:
                    return
                if self._any_lane() or not self._done.empty():
                    continue
                result = self._lost()
                if result is None:
                    log.error("%s messages in flight are unaccounted for; no SMTP lane is left", self._in_flight)
                    self._in_flight = 0
                    return
            self._in_flight -= 1
            yield result

    def _lost(self):
        """A message no lane took, as a failed result; ``None`` when there is none."""
        while True:
            try:
                job = self._todo.get_nowait()
            except queue.Empty:
                return None
            if job is not None:
                return job[0], LaneLost("no SMTP lane was left to send it")

    def close(self) -> None:
        """Let the lanes finish what they were given, say QUIT, and stop them."""
        for thread in self._threads:
            if thread.is_alive():
                self._todo.put(None)
        for thread in self._threads:
            thread.join()
