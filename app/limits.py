"""Rate limits that keep the public forms from being turned into a mail cannon.

Two kinds, both counted in Redis in moving windows (the ``limits`` library under Flask-Limiter),
so every web process shares them:

- per client address, on the public POSTs (booking, cancelling, password reset): Flask-Limiter
  decorators on the views, with the address from ``ProxyFix`` when a proxy is trusted;
- per mailbox, on the emails those actions send (``allow_for_mailbox``): a victim's address
  typed into the booking form by a bot gets a few emails, not hundreds, whatever the bot's
  addresses. Plus-addressing (``a+1@example.com``) is the same mailbox (``mailbox_of``).

The outbox also caps what one guest address receives per day (``over_daily_cap``), and the
guest emails a host's own actions send count against a daily budget (``spend_host_notices``).
"""
import logging
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse, parse_many
from redis.exceptions import RedisError

from app import clock

log = logging.getLogger(__name__)

limiter = Limiter(key_func=get_remote_address, strategy="moving-window")


def init_app(app) -> None:
    """Bind the limiter to the app's Redis (the settings come from the config's ``RATELIMIT_*``)."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    limiter.init_app(app)


def mailbox_of(email: str) -> str:
    """The mailbox an address delivers to: lower-cased, without a ``+tag`` in its local part."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if local else email.strip().lower()


_not_counted: ContextVar[bool] = ContextVar("limits_not_counted", default=False)


@contextmanager
def not_counted():
    """Within this block the mailbox limits count nothing (``flask seed-demo``: the platform's own
    demo data, written before ``make run`` starts Redis)."""
    token = _not_counted.set(True)
    try:
        yield
    finally:
        _not_counted.reset(token)


def allow_for_mailbox(action: str, email: str) -> bool:
    """Count one ``action`` (``booking``, ``cancel``, ``reset``) for the mailbox of ``email``.

    False, and nothing counted, when the mailbox is over one of ``MAILBOX_LIMITS[action]``. True
    when Redis cannot be reached: a limit must not stop bookings (``seed-demo`` runs before
    ``make run`` starts Redis, and an outage must not close the shop).
    """
    if _not_counted.get():
        return True
    items = parse_many(current_app.config["MAILBOX_LIMITS"][action])
    strategy = limiter.limiter
    key = ("mailbox", action, mailbox_of(email))
    try:
        if not all(strategy.test(item, *key) for item in items):
            return False
        return all([strategy.hit(item, *key) for item in items])
    except RedisError as exc:
        log.warning("mailbox limit not counted, Redis unavailable: %s", exc)
        return True


def over_daily_cap(emails: list[str]) -> list[bool]:
    """Count one email to each address (in order) against ``RECIPIENT_DAILY_CAP`` per mailbox and
    UTC day; True for each one past the cap. One Redis round trip for a whole outbox batch."""
    from app.queue import get_redis  # the outbox's Redis (Flask-Limiter's storage is the same server)

    cap = current_app.config["RECIPIENT_DAILY_CAP"]
    day = clock.now().date().isoformat()
    boxes = [mailbox_of(email) for email in emails]
    counts = Counter(boxes)
    pipe = get_redis().pipeline()
    for box, count in counts.items():
        key = f"recipient-day:{day}:{box}"
        pipe.incrby(key, count)
        pipe.expire(key, 2 * 86400)
    try:
        totals = dict(zip(counts, pipe.execute()[::2]))
    except RedisError as exc:  # the outbox sends without Redis; so does the cap
        log.warning("recipient cap not counted, Redis unavailable: %s", exc)
        return [False] * len(emails)
    # The first ``cap - before`` emails of a mailbox in this batch are within the cap.
    allowed = {box: max(0, cap - (totals[box] - counts[box])) for box in counts}
    over = []
    for box in boxes:
        over.append(allowed[box] <= 0)
        allowed[box] -= 1
    return over


def give_back(emails: list[str]) -> None:
    """Take back what ``over_daily_cap`` counted for emails that were not sent after all (a URL
    email still waiting for its meeting, a cancelled booking's): only what reaches an inbox counts."""
    from app.queue import get_redis

    if not emails:
        return
    day = clock.now().date().isoformat()
    pipe = get_redis().pipeline()
    for box, count in Counter(mailbox_of(email) for email in emails).items():
        pipe.decrby(f"recipient-day:{day}:{box}", count)
    try:
        pipe.execute()
    except RedisError as exc:
        log.warning("recipient cap not given back, Redis unavailable: %s", exc)


class NoticeBudgetSpent(Exception):
    """The host's guest emails of the day (``HOST_NOTICE_DAILY_LIMIT``) would be exceeded."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


def spend_host_notices(host_id: int, count: int) -> None:
    """Count ``count`` guest emails a host's action sends (moving or cancelling a date, removing a
    booking, resending a URL) against the host's daily budget.

    :raises NoticeBudgetSpent: nothing is counted then, and the action must not happen.
    """
    if count <= 0:
        return
    limit = current_app.config["HOST_NOTICE_DAILY_LIMIT"]
    item = parse(f"{limit} per day")
    strategy = limiter.limiter
    if count > limit:
        raise NoticeBudgetSpent(limit)
    try:
        if not strategy.test(item, "host-notices", str(host_id), cost=count):
            raise NoticeBudgetSpent(limit)
        strategy.hit(item, "host-notices", str(host_id), cost=count)
    except RedisError as exc:
        log.warning("host notices not counted, Redis unavailable: %s", exc)
