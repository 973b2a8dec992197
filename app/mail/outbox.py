"""The outbox: every email the product sends goes through here.

1. ``queue_email`` writes a row in the caller's transaction (nothing is sent if it rolls back)
   and, when the email is due now, asks for a send job after the commit.
2. A worker ``claim``s due rows atomically — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on
   SQLite the single ``UPDATE … WHERE id IN (SELECT …)`` runs under the database write lock —
   so two workers never take the same row.
3. ``send_claimed`` renders each row from current data, sends it over reused SMTP connections
   (several at once while the next rows render: ``MAIL_SMTP_CONNECTIONS`` first, more up to
   ``MAIL_SMTP_MAX_CONNECTIONS`` when the relay is slow to answer, and never more between all
   workers than the relay allows, ``MAIL_SMTP_RELAY_CONNECTIONS``) and marks it sent within
   moments of the relay's answer (``_Marks``: a few rows per transaction), so a crash or a retry
   re-sends at most those few and what was in flight, never a recipient already marked.

The scheduler's sweep (``send_due``) finds due rows by the indexed (status, due_at) query, so
a lost Redis message only delays an email, never loses it. The scheduler wakes up at
``next_due_at`` and starts one sweep per worker; the sweeps share the due rows batch by batch
through ``claim``, so a burst is sent by every worker at once.
"""
import hashlib
import hmac
import logging
import smtplib
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, event, func, or_, select, update
from sqlalchemy.orm import selectinload

from app import clock, limits
from app.extensions import begin_write, db
from app.mail.render import (BATCH_CHECKS, BATCH_MEMO, WAITING_PREFIX, DeferDelivery, SkipDelivery, build_message,
                             envelope_address, preload_batch, render_delivery)
from app.mail.relay_places import RelayPlaces
from app.mail.smtp import RelayFull, SmtpLanes
from app.models import Booking, Delivery, DeliveryStatus, Service, Slot, User
from app.queue import enqueue_batch_after_commit, get_redis

log = logging.getLogger(__name__)


def queue_email(
    kind: str,
    *,
    to_email: str,
    to_name: str = "",
    locale: str = "ja",
    host_id: int | None = None,
    booking_id: int | None = None,
    slot_id: int | None = None,
    payload: dict | None = None,
    due_at: datetime | None = None,
    dedupe_key: str | None = None,
    session=None,
) -> Delivery:
    """Write one email to the outbox in the current transaction.

    :param due_at: when to send (UTC); ``None`` means as soon as the transaction commits.
    :param dedupe_key: unique key that makes writing the same email twice fail loudly.
    :param session: write in this session instead of ``db.session`` (an independent transaction).
    """
    session = session or db.session
    now = clock.now()
    delivery = Delivery(
        kind=kind,
        to_email=to_email,
        to_name=to_name,
        locale=locale,
        host_id=host_id,
        booking_id=booking_id,
        slot_id=slot_id,
        payload=payload or {},
        due_at=due_at or now,
        dedupe_key=dedupe_key,
    )
    session.add(delivery)
    session.flush()
    if delivery.due_at <= now:
        from app import jobs  # jobs import this module

        # One send job per transaction, carrying every email it wrote.
        enqueue_batch_after_commit(jobs.send_deliveries, delivery.id, queue="mail", session=session)
    return delivery


def _due_condition(now: datetime):
    stale = now - timedelta(seconds=current_app.config["MAIL_CLAIM_TIMEOUT"])
    return or_(
        and_(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now),
        # A claim nobody finished: its worker died. Take it over.
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stale),
    )


def claim(limit: int, ids: list[int] | None = None) -> str | None:
    """Atomically claim up to ``limit`` due rows (optionally among ``ids``); commit; return the claim token."""
    now = clock.now()
    token = uuid.uuid4().hex
    # A lesson's URL emails fall due at the same moment but were written as its guests booked, over
    # weeks: taken in the order written, a batch held a guest or two of a hundred lessons, and
    # each lesson's meeting check, calendar entry and reads were repeated in every batch.
    due = select(Delivery.id).where(_due_condition(now)).order_by(Delivery.due_at, Delivery.slot_id).limit(limit)
    if ids is not None:
        due = due.where(Delivery.id.in_(ids))
    if db.engine.dialect.name == "postgresql":
        # Lock the batch in a CTE that runs once. As a plain ``IN (subquery)``, the planner may
        # pick a nested-loop semi join (it does when the statistics are stale, i.e. right after
        # a burst was written) that re-runs the subquery for every row; each run skips the rows
        # this statement already updated, so the LIMIT window slides and one claim takes every
        # due row (seen in bench/outbox_delivery.py: 4,800 rows in one 200-row claim).
        locked = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        due = select(locked.c.id)
    begin_write()
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()), _due_condition(now))
        .values(
            status=DeliveryStatus.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=Delivery.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return token if result.rowcount else None


#: An email whose lane found every connection the relay allows in use by the other workers is
#: tried again this much later (their places come back as their sweeps end, or lapse in 10 s).
RELAY_FULL_WAIT = timedelta(seconds=30)


class _Marks:
    """Marks claimed rows in short transactions, on a connection of its own.

    A Core statement on a dedicated connection costs a fraction of an ORM session commit, and
    leaves ``db.session`` free for the context builders. SQLite: every transaction here starts
    with the write lock (``BEGIN IMMEDIATE``). The row's claim token guards every update: a row
    whose claim expired and was taken over by another worker is not ours to mark. One ``_Marks``
    may serve several claims (a sweep's batches), so each row brings its own token.
    """

    _table = Delivery.__table__
    _sent = (
        update(_table)
        .where(_table.c.id == bindparam("row_id"), _table.c.claim_token == bindparam("token"))
        .values(status=DeliveryStatus.SENT, sent_at=bindparam("sent_at"), message_id=bindparam("message_id"),
                last_error="")
    )

    #: Rows sent are marked together once this many are waiting, or the first waited this long (a
    #: transaction per row was a large part of a worker's CPU per email: bench/README.md). What
    #: waits is like what is in flight: a worker killed now sends it again (with the same
    #: Message-ID), so both are bounded.
    GATHER_ROWS = 16
    GATHER_SECONDS = 0.02

    def __init__(self):
        self.conn = db.engine.connect().execution_options(sqlite_immediate=True)
        #: Rows marked sent so far.
        self.sent_count = 0
        self._waiting: list[dict] = []
        self._waiting_since = 0.0

    def __enter__(self) -> "_Marks":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.flush()  # sent is sent, whatever stopped the batch
        finally:
            self.conn.close()

    def results(self, results) -> None:
        """Mark each ``(delivery, error or None)`` that came back from the SMTP lanes: a failure at
        once, those sent together (see ``GATHER_ROWS``; the rest when the marks end)."""
        for delivery, error in results:
            if error is None:
                if not self._waiting:
                    self._waiting_since = time.monotonic()
                self._waiting.append({"row_id": delivery.id, "token": delivery.claim_token, "sent_at": clock.now(),
                                      "message_id": delivery.message_id})
            elif isinstance(error, RelayFull):
                # Our own workers hold every connection the relay allows, and are sending: not this
                # email's fault, so it costs no attempt (a relay's own 421 may last: that counts).
                self.later(delivery, clock.now() + RELAY_FULL_WAIT, f"{type(error).__name__}: {error}")
            else:
                self.failed(delivery, f"{type(error).__name__}: {error}", permanent=_is_permanent(error))
        if len(self._waiting) >= self.GATHER_ROWS or (
                self._waiting and time.monotonic() - self._waiting_since >= self.GATHER_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Mark every row sent that is waiting, in one transaction (the write lock taken once)."""
        sent, self._waiting = self._waiting, []
        if sent:
            with self.conn.begin():
                self.conn.execute(self._sent, sent)
            self.sent_count += len(sent)

    def mark(self, delivery: Delivery, **values) -> None:
        table = self._table
        with self.conn.begin():
            self.conn.execute(update(table).where(table.c.id == delivery.id,
                                                  table.c.claim_token == delivery.claim_token).values(**values))

    def later(self, delivery: Delivery, until: datetime, last_error: str) -> None:
        """Due again at ``until``, the claim's attempt given back: waiting is not failing."""
        self.mark(delivery, status=DeliveryStatus.PENDING, due_at=until, attempts=self._table.c.attempts - 1,
                  last_error=last_error)

    def failed(self, delivery: Delivery, error: str, permanent: bool = False) -> None:
        """Retry later with backoff, or give up after MAIL_MAX_ATTEMPTS (at once for a permanent error)."""
        log.warning("delivery %s attempt %s failed: %s", delivery.id, delivery.attempts, error)
        if permanent or delivery.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
            self.mark(delivery, status=DeliveryStatus.FAILED, last_error=error)
        else:
            self.mark(delivery, status=DeliveryStatus.PENDING, due_at=clock.now() + _retry_delay(delivery.attempts),
                      last_error=error)


def _retry_delay(attempts: int) -> timedelta:
    """Back off 1, 2, 4, 8 … minutes between attempts."""
    return timedelta(minutes=2 ** max(attempts - 1, 0))


def send_claimed(token: str, lanes: SmtpLanes | None = None, marks: _Marks | None = None) -> int:
    """Render and send the rows claimed with ``token``; return how many were marked sent.

    :param lanes: open SMTP lanes to reuse, with the ``marks`` their results go to (a sweep keeps
        both for all its batches, and marks what was sent whenever it comes back: the messages
        of one batch are still on their way while the next batch renders, so the relay never
        waits for a batch's last reply); by default both are opened for this batch and closed
        after it, every row marked.
    """
    rows = db.session.scalars(select(Delivery).where(Delivery.claim_token == token).order_by(Delivery.id)).all()
    if lanes is None:
        if not rows:
            return 0
        config = current_app.config
        with SmtpLanes(config, min(len(rows), config["MAIL_SMTP_CONNECTIONS"]),
                       ceiling=min(len(rows), config["MAIL_SMTP_MAX_CONNECTIONS"]),
                       places=_relay_places()) as lanes, _Marks() as marks:
            try:
                _send_rows(rows, lanes, marks)
            finally:
                # Also when rendering crashed: what the lanes were given is sent, so mark it.
                marks.results(lanes.finished(wait=True))
        return marks.sent_count  # the marks ended: every row sent is marked
    before = marks.sent_count
    _send_rows(rows, lanes, marks)
    return marks.sent_count - before


def _relay_places() -> RelayPlaces | None:
    """The relay's connection limit, shared by every worker (``MAIL_SMTP_RELAY_CONNECTIONS``)."""
    return RelayPlaces.for_config(get_redis(), current_app.config)


def _send_rows(rows: list[Delivery], lanes: SmtpLanes, marks: _Marks) -> None:
    """Render each row and hand it to the lanes; mark each row whose result came back meanwhile."""
    # The rows are ours until the claim expires: read them once and detach them, so a context
    # builder that commits (a Zoom re-issue) does not expire them. Builders load what they need
    # by id, from one read snapshot per batch (a batch renders quickly; a fresh transaction per
    # row was a large part of a send: bench/README.md); ``_Marks`` writes on its own connection.
    for delivery in rows:
        db.session.expunge(delivery)
    capped = _over_daily_cap(rows)
    not_sent: list[Delivery] = []  # rendered as waiting or no longer wanted: they give their count back
    with _batch_session(db.session(), rows):
        try:
            for delivery in rows:
                if delivery.id in capped:
                    marks.mark(delivery, status=DeliveryStatus.CANCELLED, last_error=DAILY_CAP_REACHED)
                    continue
                message = _build(delivery, marks, not_sent)
                if message is not None:
                    lanes.submit(delivery, message, envelope_address(delivery.to_email))
                marks.results(lanes.finished())
        finally:
            limits.give_back([delivery.to_email for delivery in not_sent if delivery.booking_id is not None])
    db.session.rollback()  # end the batch's read snapshot


#: ``last_error`` of a guest email dropped by the per-address daily cap.
DAILY_CAP_REACHED = "dropped: this address reached RECIPIENT_DAILY_CAP today"


def _over_daily_cap(rows: list[Delivery]) -> set[int]:
    """The ids of the batch's guest emails (about a booking) past their address's daily cap.

    A bot that types one victim's address into many forms makes the outbox write many rows; the
    cap bounds what that inbox receives, whatever the rows (``app.limits.over_daily_cap``).
    """
    guests = [delivery for delivery in rows if delivery.booking_id is not None]
    if not guests:
        return set()
    over = limits.over_daily_cap([delivery.to_email for delivery in guests])
    return {delivery.id for delivery, dropped in zip(guests, over) if dropped}


@contextmanager
def _batch_session(session, rows: list[Delivery]):
    """Render a batch from one set of loaded objects: its bookings (with their dates, services and
    hosts) and the accounts it is about in a few queries, and every object it loads held until
    it ends, with a memo for the context builders (``render.per_batch``).

    The session's identity map holds objects weakly: once a row's email was rendered, the slot,
    service and host it loaded were garbage, and the next guest of the same slot loaded them
    again (a query per row). Held, they come from the identity map, as of the batch's one
    read snapshot. A commit or rollback during the batch (a Zoom re-issue, a row that failed to
    render) ends that snapshot and empties the memo.
    """
    held = []

    def hold(session, instance) -> None:
        held.append(instance)

    def forget(session) -> None:
        session.info[BATCH_MEMO].clear()

    event.listen(session, "loaded_as_persistent", hold)
    event.listen(session, "after_commit", forget)
    event.listen(session, "after_rollback", forget)
    session.info[BATCH_MEMO] = {}
    session.info[BATCH_CHECKS] = {}
    try:
        booking_ids = {delivery.booking_id for delivery in rows if delivery.booking_id}
        if booking_ids:
            preload_batch(session.scalars(select(Booking).where(Booking.id.in_(booking_ids)).options(
                selectinload(Booking.slot).selectinload(Slot.service).selectinload(Service.host))).all())
        # An account email (a password reset …) is about the account in its payload: a miss in
        # the identity map makes ``Session.get`` build its statement afresh, each row its own.
        user_ids = {user_id for delivery in rows if delivery.booking_id is None
                    and isinstance(user_id := delivery.payload.get("user_id"), int)}
        if user_ids:
            session.scalars(select(User).where(User.id.in_(user_ids))).all()
        yield
    finally:
        del session.info[BATCH_MEMO]
        del session.info[BATCH_CHECKS]
        event.remove(session, "after_rollback", forget)
        event.remove(session, "after_commit", forget)
        event.remove(session, "loaded_as_persistent", hold)


def _build(delivery: Delivery, marks: _Marks, not_sent: list[Delivery]):
    """The row's email, rendered from current data; ``None`` (and the row marked) when it no
    longer applies or could not be rendered. Rows skipped or waiting are added to ``not_sent``."""
    delivery.message_id = delivery.message_id or message_id_for(delivery)  # detached: not written
    try:
        return build_message(delivery, render_delivery(delivery))
    except SkipDelivery as why:
        marks.mark(delivery, status=DeliveryStatus.CANCELLED, last_error=str(why))
        not_sent.append(delivery)
    except DeferDelivery as wait:
        not_sent.append(delivery)
        marks.later(delivery, wait.until, "" if wait.quiet else f"{WAITING_PREFIX}{wait.reason}")
    except Exception as exc:  # one broken row must not hold its whole batch hostage
        log.exception("delivery %s could not be rendered", delivery.id)
        db.session.rollback()
        marks.failed(delivery, f"render: {type(exc).__name__}: {exc}")
    return None


def message_id_for(delivery: Delivery) -> str:
    """The row's Message-ID, the same on every attempt.

    Email is at-least-once: a worker that dies between the SMTP server's 250 and the row's mark
    sends the email again after MAIL_CLAIM_TIMEOUT. With the same Message-ID both copies are one
    message to the receiving side (mail clients and archives thread or drop the copy).

    It is also what a bounce (DSN) is matched by (``app.mail.bounces``), so it must not be
    guessable: its first part is an HMAC of the row keyed with ``SECRET_KEY`` (128 bits), not a
    time stamp; a guessable one would let anyone who knows a guest's address mark it
    undeliverable with a forged DSN. The row's id follows, for the reader's lookup.
    """
    stamp = int(clock.as_utc(delivery.created_at).timestamp() * 1_000_000)
    key = current_app.config["SECRET_KEY"].encode()
    tag = hmac.new(key, f"message-id:{delivery.id}:{stamp}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"<{tag}.{delivery.id}.outbox@booking.local>"


def _is_permanent(exc: Exception) -> bool:
    """A 5xx answer (550 no such user …) will not change on retry; 4xx and dropped links may."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def send_deliveries(ids: list[int]) -> int:
    """Send the given rows if they are (still) due; return how many were sent."""
    token = claim(len(ids), ids=ids)
    return send_claimed(token) if token else 0


def send_due(batch_size: int | None = None) -> int:
    """Send due rows, batch after batch, until none is left; return how many were sent.

    Several sweeps may run at once (one per worker): each claims its own batches. A sweep stops
    claiming after MAIL_SWEEP_SECONDS, well inside RQ's job timeout (180 s by default), which
    would otherwise kill it mid-batch and leave that batch waiting for MAIL_CLAIM_TIMEOUT; the
    scheduler starts another sweep for whatever is still due.
    """
    config = current_app.config
    batch_size = batch_size or config["MAIL_BATCH_SIZE"]
    deadline = time.monotonic() + config["MAIL_SWEEP_SECONDS"]  # real time, not the (test) clock
    with SmtpLanes(config, places=_relay_places()) as lanes, _Marks() as marks:  # for every batch of this sweep
        try:
            while time.monotonic() < deadline and (token := claim(batch_size)):
                send_claimed(token, lanes, marks)
        finally:
            marks.results(lanes.finished(wait=True))
    return marks.sent_count


def due_count() -> int:
    """How many rows are due now (cheap: uses the status/due index)."""
    return db.session.scalar(select(func.count()).select_from(Delivery).where(_due_condition(clock.now())))


def next_due_at() -> datetime | None:
    """When the next row not yet due becomes due: a pending row's due time, or the moment a
    claim in progress would count as abandoned. ``None`` when nothing is waiting.

    The scheduler sleeps until then, so an email written ahead of time goes out on time
    rather than up to a sweep interval late.
    """
    now = clock.now()
    timeout = timedelta(seconds=current_app.config["MAIL_CLAIM_TIMEOUT"])
    pending = db.session.scalar(
        select(func.min(Delivery.due_at)).where(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at > now)
    )
    claimed = db.session.scalar(
        select(func.min(Delivery.claimed_at)).where(
            Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at >= now - timeout
        )
    )
    moments = [pending] if pending else []
    if claimed:
        moments.append(claimed + timeout)
    return min(moments, default=None)


def cancel_pending(**filters) -> int:
    """Cancel pending rows matching column filters (e.g. ``booking_id=3``); return how many."""
    conditions = [getattr(Delivery, name) == value for name, value in filters.items()]
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, *conditions)
        .values(status=DeliveryStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def retry_now(delivery_id: int) -> bool:
    """Staff resend: put a failed or cancelled row back in the queue, due now, with fresh attempts."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.CANCELLED]))
        .values(status=DeliveryStatus.PENDING, due_at=clock.now(), attempts=0, last_error="")
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    from app import jobs  # jobs import this module

    enqueue_batch_after_commit(jobs.send_deliveries, delivery_id, queue="mail")
    return True
