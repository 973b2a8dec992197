"""The small interface every video tool implements, and the errors its calls raise.

The meetings wing (``app.meetings``) decides *when* a meeting is created, checked, moved or
deleted, retries every call with one policy (``app.meetings.retry``) and writes the emails; a
tool (``app/zoom/provider.py``, ``app/google/provider.py``) only talks to its platform. A third
tool is one new folder with a ``provider.py`` that subclasses ``VideoTool`` and is listed in
``app.meetings.tools.TOOL_MODULES``.

Every call takes the id of the host's link (the tool's own model, built on
``app.models.meeting.VideoLinkMixin``) and raises only the errors below, so the wing never
sees a platform's status codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy
import os

import requests

# --- talking to a platform ----------------------------------------------------------------------

_http_sessions: dict[int, requests.Session] = {}


def http() -> requests.Session:
    """The process's HTTP session for the tools' APIs: connections are kept alive between calls.

    At the top of the hour an outbox batch checks each lesson's meeting on its tool; a new
    connection (TLS, for the real platforms) per call cost more than the call. One session per
    process, so a forked work horse never shares its parent's sockets, and one that keeps no
    cookie, so nothing of one host's call rides along with another's.
    """
    pid = os.getpid()
    session = _http_sessions.get(pid)
    if session is None:
        _http_sessions.clear()
        session = _http_sessions[pid] = requests.Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


# --- errors -------------------------------------------------------------------------------------


class ProviderError(Exception):
    """Any failed call to a video tool. ``status``/``code`` are the platform's, for staff only."""

    def __init__(self, message: str, *, status: int | None = None, code: int | str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ProviderRetryable(ProviderError):
    """Try again later (rate limit, 5xx, timeout, an odd body): ``retry_after`` seconds when the
    platform said so. ``answered`` is False when no answer came at all (the platform may still have
    done what was asked)."""

    def __init__(self, message: str, *, retry_after: float | None = None, answered: bool = True, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.answered = answered


class ProviderDailyLimit(ProviderError):
    """The platform's daily budget of writes is spent until ``resume_at``."""

    def __init__(self, message: str, *, resume_at: datetime, **kwargs):
        super().__init__(message, **kwargs)
        self.resume_at = resume_at


class ProviderAuthError(ProviderError):
    """The host's grant cannot be used (revoked, expired, scope missing): the host must relink."""


class MeetingGone(ProviderError):
    """The meeting does not exist any more (deleted by the host on the platform, or never made)."""


class MeetingInProgress(ProviderError):
    """The meeting is running, so the platform refuses to delete it now."""


class MeetingEnded(ProviderError):
    """The meeting is over: nothing is left to join or delete."""


class ProviderRefused(ProviderError):
    """Any other refusal (a 4xx the wing cannot act on)."""


# --- what goes in and out -------------------------------------------------------------------------

@dataclass(frozen=True)
class MeetingSpec:
    """What the wing asks a tool for: one meeting for one slot."""

    slot_id: int
    title: str
    starts_at: datetime  # aware UTC
    ends_at: datetime
    duration_minutes: int
    #: The host's IANA time zone (a tool may show the meeting in it).
    timezone: str
    #: Unique per issuance and kept across retries: a tool writes it into the meeting (Zoom's
    #: agenda, Google's event id) so ``find`` can tell whether a create it never heard back from
    #: was done anyway.
    issue_key: str
    #: Each guest is to get their own join URL (``add_guest``); a tool whose plan turns out not to
    #: allow it creates the meeting without (``IssuedMeeting.with_registrants`` says which).
    with_registrants: bool = False


@dataclass(frozen=True)
class IssuedMeeting:
    """A meeting as the tool reports it."""

    external_id: str
    join_url: str
    #: Zoom's passcode (Google Meet has none).
    password: str = ""
    #: A page where the host manages it (Google Calendar's event page); "" when none.
    host_url: str = ""
    #: Made with registration: each guest joins by their own URL (``VideoTool.add_guest``).
    with_registrants: bool = False


@dataclass(frozen=True)
class GuestLink:
    """One guest's own registration on a meeting: the tool's id for it and the guest's join URL."""

    id: str
    join_url: str


# --- the interface --------------------------------------------------------------------------------

class VideoTool:
    """One video tool a host can link. Subclasses set the class attributes and the calls."""

    #: Stored in ``meetings.provider`` and ``services.venue``: never change it once rows exist.
    key: str = ""
    #: The product name, as hosts and guests read it (「Zoom」「Google Meet」).
    name: str = ""
    #: The link model (a ``VideoLinkMixin`` subclass).
    link_model: type = None  # type: ignore[assignment]
    #: The endpoint of the tool's settings section (link, unlink, OFF), for links in emails and pages.
    settings_endpoint: str = ""

    # reading the link
    def link_for(self, host_id: int):
        """The host's link while it is ON or needs relinking; None when not linked or OFF."""
        raise NotImplementedError

    def grant_for(self, host_id: int):
        """The link whose tokens may still act on the platform: ON, or OFF while it deletes what it left."""
        raise NotImplementedError

    # meetings
    def create(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting:
        raise NotImplementedError

    def find(self, link_id: int, spec: MeetingSpec) -> IssuedMeeting | None:
        """The meeting an earlier create of this ``spec.issue_key`` made, if the platform has it."""
        raise NotImplementedError

    def get(self, link_id: int, external_id: str) -> IssuedMeeting:
        """The meeting as it is now. :raises MeetingGone: deleted or cancelled on the platform."""
        raise NotImplementedError

    def update(self, link_id: int, external_id: str, spec: MeetingSpec) -> None:
        """Move it to the spec's time (its join URL stays)."""
        raise NotImplementedError

    def delete(self, link_id: int, external_id: str) -> None:
        """Delete it; one already gone counts as deleted."""
        raise NotImplementedError

    def start_link(self, link_id: int, external_id: str) -> str:
        """A link that starts the meeting as its host, fetched now (Zoom's expire after 2 hours)."""
        raise NotImplementedError

    # the link itself
    def check_link(self, link_id: int) -> None:
        """The pre-flight: the grant still works (refreshed when due) and the plan is read again when stale.
        :raises ProviderAuthError: it does not."""
        raise NotImplementedError

    def cut_minutes(self, link, participants: int) -> int | None:
        """After how many minutes the host's plan ends a meeting of ``participants`` people (host
        included); None when the plan does not cut it."""
        return None

    def writes_left(self, link_id: int) -> int | None:
        """Creates/updates left in the platform's daily budget, or None when it has none."""
        return None

    def budget_resets_at(self) -> datetime | None:
        """When the daily budget comes back (None without one)."""
        return None

    def record_write(self, link_id: int, *, exhausted: bool = False) -> None:
        """Count one create/update against the daily budget (no-op without one)."""

    def finish_off(self, host_id: int) -> bool:
        """An OFF link with nothing left to delete is revoked and forgotten; returns True when it was."""
        raise NotImplementedError

    # per-guest join links (optional: a tool without them keeps the shared URL)
    def supports_guest_links(self, link) -> bool:
        """Whether meetings made through ``link`` can give each guest their own join URL (its plan allows it)."""
        return False

    def add_guest(self, link_id: int, external_id: str, name: str, email: str) -> GuestLink:
        """Register one guest on the meeting; their own join URL comes back.
        :raises MeetingGone: the meeting is gone; ``ProviderRefused``: the tool will not (plan, cap, limit)."""
        raise NotImplementedError

    def find_guest(self, link_id: int, external_id: str, email: str) -> GuestLink | None:
        """The guest's registration on the meeting if the tool has it (after an add it never answered)."""
        raise NotImplementedError

    def cancel_guest(self, link_id: int, external_id: str, guest_id: str, email: str = "") -> None:
        """Cancel one guest's registration: their own URL stops working. A meeting already gone counts as done."""
        raise NotImplementedError
