"""Slowing down password guessing (ASVS 5.0 6.3.1), and pacing the emails account forms send.

Failed logins are counted three ways, each with its own allowance; past it, the next attempt
must wait ``LOGIN_BACKOFF_SECONDS``, twice as long after each further failure, up to
``LOGIN_BACKOFF_MAX``:

- one account from one address (``LOGIN_THROTTLE_LIMIT``): someone guessing a password;
- one account from anywhere (``LOGIN_ACCOUNT_LIMIT``): the same from many addresses;
- one address, counting the accounts it failed on (``LOGIN_ADDRESS_LIMIT``): one password sprayed
  over many accounts. A person mistyping their own password fails on one account, so an office
  behind one address is not slowed by its own typos.

An account's own allowance is larger than the pair's, so a stranger's guesses slow the owner
down only once they come from many addresses. Counts live in Redis (every web process shares
them), hashed, and are forgotten ``LOGIN_THROTTLE_WINDOW`` seconds after the last failure; a
successful login forgets its account's counts (never its address's: an attacker's own account
must not reset the spraying count). Every time is read from ``app.clock``.

The address is ``request.remote_addr``: behind a load balancer it is the balancer's unless
``TRUSTED_PROXIES`` tells werkzeug's ``ProxyFix`` how many proxy hops to believe, and then every
client would share one allowance.
"""
import hashlib
import math
from dataclasses import dataclass

from flask import current_app

from app import clock
from app.queue import get_redis

#: The backoff stops doubling after this many failures past an allowance (it is capped long before).
_MAX_DOUBLINGS = 20


class LoginThrottled(Exception):
    """Too many failed logins: the next attempt must wait ``wait_seconds``."""

    def __init__(self, wait_seconds: int):
        super().__init__(wait_seconds)
        self.wait_seconds = wait_seconds

    @property
    def wait_minutes(self) -> int:
        """The wait in whole minutes, rounded up (at least 1)."""
        return max(1, math.ceil(self.wait_seconds / 60))


@dataclass(frozen=True)
class _Count:
    key: str
    limit: int


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _counts(account: str, address: str | None) -> tuple[_Count, _Count, _Count]:
    config = current_app.config
    who, where = _digest(account), _digest(address or "-")
    return (_Count(f"login-failures:pair:{who}:{where}", config["LOGIN_THROTTLE_LIMIT"]),
            _Count(f"login-failures:account:{who}", config["LOGIN_ACCOUNT_LIMIT"]),
            _Count(f"login-failures:address:{where}", config["LOGIN_ADDRESS_LIMIT"]))


def _wait(failures: int, last: float, limit: int, now: float) -> float:
    """Seconds before the next attempt is allowed, given ``failures`` so far, the last at ``last``."""
    config = current_app.config
    if failures < limit or now - last > config["LOGIN_THROTTLE_WINDOW"]:
        return 0.0
    delay = min(config["LOGIN_BACKOFF_SECONDS"] * 2 ** min(failures - limit, _MAX_DOUBLINGS),
                config["LOGIN_BACKOFF_MAX"])
    return max(0.0, last + delay - now)


def check(account: str, address: str | None) -> None:
    """Raise ``LoginThrottled`` if an attempt on ``account`` from ``address`` must wait.

    :param account: the normalized email typed (known or not: unknown ones are counted alike,
        so the answer tells nothing about which emails have accounts).
    """
    counts = _counts(account, address)
    pipe = get_redis().pipeline(transaction=False)
    for count in counts:
        pipe.hmget(count.key, "n", "last")
    now = clock.now().timestamp()
    wait = max(_wait(int(n or 0), float(last or 0), count.limit, now)
               for count, (n, last) in zip(counts, pipe.execute()))
    if wait > 0:
        raise LoginThrottled(math.ceil(wait))


def record_failure(account: str, address: str | None) -> None:
    """Count one failed attempt (a wrong password or second-factor code) on ``account`` from ``address``."""
    pair, own, client = _counts(account, address)
    window, now = current_app.config["LOGIN_THROTTLE_WINDOW"], clock.now().timestamp()
    accounts_key = f"{client.key}:accounts"
    redis = get_redis()
    pipe = redis.pipeline()
    for count in (pair, own):
        pipe.hincrby(count.key, "n", 1)
        pipe.hset(count.key, "last", now)
        pipe.expire(count.key, window)
    pipe.sadd(accounts_key, _digest(account))
    pipe.expire(accounts_key, window)
    pipe.scard(accounts_key)
    accounts_failed = pipe.execute()[-1]
    pipe = redis.pipeline()
    pipe.hset(client.key, mapping={"n": accounts_failed, "last": now})
    pipe.expire(client.key, window)
    pipe.execute()


def forget(account: str, address: str | None) -> None:
    """A successful login (or a password reset): forget the account's failures, not the address's."""
    pair, own, _client = _counts(account, address)
    get_redis().delete(pair.key, own.key)


def email_allowed(kind: str, to_email: str) -> bool:
    """True at most once per ``ACCOUNT_EMAIL_INTERVAL`` seconds for emails of ``kind`` to ``to_email``.

    Signup and 「確認メールを再送」 send email to an address anyone can type: this keeps those forms
    from being turned on one mailbox.
    """
    key = f"account-mail:{kind}:{_digest(to_email.strip().lower())}"
    return bool(get_redis().set(key, 1, nx=True, ex=current_app.config["ACCOUNT_EMAIL_INTERVAL"]))
