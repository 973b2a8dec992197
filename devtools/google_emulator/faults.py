"""Faults the emulator can be told to serve instead of (or, for ``timeout``, before) the real answer.

A fault names the *operation* it hits (``token``, ``revoke``, ``insert``, ``get``, ``patch``,
``delete``) rather than a path, because that is how the product's retry policy thinks about Google.
"""

from __future__ import annotations

from dataclasses import dataclass

OPERATIONS = ("token", "revoke", "insert", "get", "patch", "delete")
#: Error kinds answered in Google's error shape (see ``errors.FAULT_ANSWERS``).
ERROR_KINDS = ("401", "403_rate", "403_user_rate", "403_quota", "429", "404", "410", "500", "503")
#: Kinds that break the transport or the body rather than answer an error.
BROKEN_KINDS = ("timeout", "html", "empty", "bad_json")
FAULT_KINDS = ERROR_KINDS + BROKEN_KINDS


@dataclass
class Fault:
    """A queued failure for one operation."""

    operation: str
    kind: str
    times: int | None  # None: every matching request until the faults are cleared
    retry_after: float | int | None  # 429 only: the Retry-After header, seconds
    seconds: float  # timeout only: how long to sleep before answering normally
    status: int  # html only: 200 or 502

    def as_json(self) -> dict:
        """The fault as the control API shows it."""
        return {"operation": self.operation, "kind": self.kind, "times": self.times,
                "retry_after": self.retry_after, "seconds": self.seconds, "status": self.status}


def parse_fault(spec: dict, *, default_seconds: float) -> Fault:
    """Build a :class:`Fault` from the control API's JSON; raise ``ValueError`` on a bad spec."""
    operation, kind = spec.get("operation"), str(spec.get("kind"))
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    times = spec.get("times", 1)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise ValueError("times must be a positive integer, or null for every request")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (not isinstance(retry_after, (int, float)) or retry_after < 0):
        raise ValueError("retry_after must be a number of seconds")
    status = spec.get("status", 502)
    if kind == "html" and status not in (200, 502):
        raise ValueError("status for an html fault must be 200 or 502")
    seconds = spec.get("seconds")
    return Fault(operation=operation, kind=kind, times=times, retry_after=retry_after,
                 seconds=default_seconds if seconds is None else float(seconds), status=status)
