"""The relay's connection limit, counted across every sending worker.

A relay allows so many connections from us (``MAIL_SMTP_RELAY_CONNECTIONS``), however many
workers send. Each worker sizes its own SMTP lanes (``app.mail.smtp``); without a shared count,
four workers growing to ten lanes each open forty connections and the relay answers the extra
ones ``421``. So a connection first takes a *place* here, in Redis, and gives it back when it
closes. A place is a lease: it lasts ``TTL`` seconds and its connection renews it while it is
open, so the places of a worker that was killed come back by themselves.

When Redis does not answer (a connection error or a timeout, not a script's error), a
connection goes ahead without a place (logged): a worker's own
ceiling (``MAIL_SMTP_MAX_CONNECTIONS``) and the relay's ``421`` still hold, and email keeps going.

(A sorted set of leases with their expiry, checked and changed by one Lua script each, on
Redis's clock so the workers' clocks need not agree. The semaphore packages on PyPI are
unmaintained or much larger than these twenty lines.)
"""
import logging
import os
import socket
import uuid

from redis import Redis
from redis.exceptions import ConnectionError as RedisUnreachable, TimeoutError as RedisTimeout

log = logging.getLogger(__name__)

#: Redis did not answer: not a script's error, which is a bug and raises.
_UNANSWERED = (RedisUnreachable, RedisTimeout)

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS[1] the set; ARGV: place, limit, ttl ms. 1 when the place is taken, 0 when all are.
_TAKE = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: KEYS[1] the set; ARGV: place, ttl ms. 1 when renewed, 0 when it had lapsed (maybe taken since).
_RENEW = _NOW_MS + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: KEYS[1] the set. How many places are held now.
_COUNT = _NOW_MS + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

#: A place held without Redis (it did not answer): nothing to renew or give back.
UNCOUNTED = "uncounted"


class RelayPlaces:
    """Places at one relay (``host:port``), at most ``limit`` taken at once by all workers."""

    #: Seconds a place lasts unless its connection renews it; renewed after a third of that.
    TTL = 10.0

    def __init__(self, redis: Redis, limit: int, relay: str):
        self.limit = limit
        self.key = f"smtp-relay-places:{relay}"
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._count = redis.register_script(_COUNT)
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:"
        self._warned = False

    @classmethod
    def for_config(cls, redis: Redis, config) -> "RelayPlaces | None":
        """The places at the configured relay; None when no limit is configured (0)."""
        limit = config.get("MAIL_SMTP_RELAY_CONNECTIONS", 0)
        return cls(redis, limit, f"{config['SMTP_HOST']}:{config['SMTP_PORT']}") if limit > 0 else None

    def take(self) -> str | None:
        """A place for one connection, None when every place is taken (``UNCOUNTED`` when Redis
        does not answer)."""
        place = self._prefix + uuid.uuid4().hex[:12]
        try:
            return place if self._take(keys=[self.key], args=[place, self.limit, self._ttl_ms]) else None
        except _UNANSWERED as exc:
            self._redis_down(exc)
            return UNCOUNTED

    def renew(self, place: str) -> bool:
        """Keep ``place`` for another ``TTL``; False when it had already lapsed (it is not ours)."""
        if place == UNCOUNTED:
            return True
        try:
            return bool(self._renew(keys=[self.key], args=[place, self._ttl_ms]))
        except _UNANSWERED as exc:
            self._redis_down(exc)
            return True  # the lease runs on; the next renewal tries again

    def give_back(self, place: str) -> None:
        if place == UNCOUNTED:
            return
        try:
            self._redis.zrem(self.key, place)
        except _UNANSWERED as exc:
            self._redis_down(exc)  # it lapses after TTL

    def taken(self) -> int:
        """Places taken now (what the tests look at)."""
        return self._count(keys=[self.key])

    @property
    def _ttl_ms(self) -> int:
        return int(self.TTL * 1000)

    def _redis_down(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Redis did not answer (%s): SMTP connections are not counted across workers for now", exc)
