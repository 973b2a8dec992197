"""Provider-neutral: a host's link to a video tool (the shared columns), and the one meeting of a slot."""
import enum
from datetime import datetime

from flask_babel import LazyString, lazy_gettext as _l
from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint, false as sa_false, select
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime


class LinkStatus(str, enum.Enum):
    #: Linked and ON: meetings are issued and URLs sent.
    ACTIVE = "active"
    #: The grant stopped working (refresh failed, deauthorized …): the host must relink.
    NEEDS_RELINK = "needs_relink"
    #: Turned OFF by the host, but kept (with its grant) while meetings the tool could not delete
    #: yet are retried; removed, and the grant revoked, once none is left. Reads as "no link".
    OFF = "off"


class LinkBreak(str, enum.Enum):
    """Why a link needs relinking: stored as a code, shown in the reader's language."""

    #: Refreshing the grant failed: it expired, or was revoked on the tool's side.
    GRANT_LOST = "grant_lost"
    #: The same account was linked by another host account (the tool keeps only the newest grant).
    TAKEN_OVER = "taken_over"
    #: The host did not grant what issuing meetings needs (Google's calendar permission unticked).
    SCOPE_MISSING = "scope_missing"

    @classmethod
    def text_of(cls, stored: str, tool: str = "Zoom") -> LazyString | str:
        """The text of a stored code, translated when rendered; a sentence stored before the codes, as it is."""
        try:
            code = cls(stored)
        except ValueError:
            return stored
        if code == cls.TAKEN_OVER:
            return _l("同じ%(tool)sアカウントが別のホストアカウントで連携されたため、連携が解除されました。", tool=tool)
        if code == cls.SCOPE_MISSING:
            return _l("%(tool)sの連携で、予定の作成が許可されませんでした。もう一度連携し、すべての項目を許可してください。",
                      tool=tool)
        return _l("%(tool)sとの連携が切れました（認可の有効期限切れ、または%(tool)s側で取り消されました）。", tool=tool)


class VideoLinkMixin:
    """The columns every video tool's link shares (at most one per host and tool; absent = OFF).

    A tool's model adds who the account is (its user id, unique so one account is never linked
    to two hosts) and its plan.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[LinkStatus] = mapped_column(Enum(LinkStatus, native_enum=False, length=20),
                                               default=LinkStatus.ACTIVE)
    #: Why the link needs relinking: a ``LinkBreak`` code (rows from before the codes hold a
    #: Japanese sentence); read ``broken_reason_text``.
    broken_reason: Mapped[str] = mapped_column(String(300), default="")
    #: Fernet-encrypted tokens (see app/crypto.py); never logged or rendered.
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(500), default="")
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: Bookings made at or after this moment get meetings automatically.
    applies_from: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    #: The tool's product name (「Zoom」「Google Meet」), for the texts about the link.
    tool_name = ""

    @declared_attr
    def host_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("users.id"), unique=True)

    @declared_attr
    def host(cls):
        return relationship("User")

    @classmethod
    def linked(cls, host_ids):
        """The links of these hosts that are ON or need relinking (not OFF): what ``link_for`` reads."""
        return select(cls).where(cls.host_id.in_(host_ids), cls.status != LinkStatus.OFF)

    @property
    def is_active(self) -> bool:
        return self.status == LinkStatus.ACTIVE

    @property
    def has_grant(self) -> bool:
        """Its tokens may still be used: ON, or OFF while it deletes what it left on the tool."""
        return self.status in (LinkStatus.ACTIVE, LinkStatus.OFF)

    @property
    def broken_reason_text(self) -> LazyString | str:
        """Why the link needs relinking, in the reader's language."""
        return LinkBreak.text_of(self.broken_reason, self.tool_name)


class MeetingStatus(str, enum.Enum):
    #: Recorded before calling the tool, so a retried job reconciles instead of creating twice.
    ISSUING = "issuing"
    ISSUED = "issued"
    #: Deleted by us (OFF, slot cancelled) or found gone on the tool.
    DELETED = "deleted"
    #: Could not be issued and no retry is planned; ``failure`` says why. A later attempt
    #: (pre-flight, send time, a new booking) may still issue it.
    FAILED = "failed"
    #: Should be gone (slot cancelled or emptied, link OFF) but the tool did not delete it: still
    #: live on the host's account. ``failure`` says why; retried, and the host can retry it by hand.
    DELETE_FAILED = "delete_failed"


class MeetingFailure(str, enum.Enum):
    """Why a slot's meeting has no URL: stored as a code, shown in the reader's language.

    The stored values keep their first (Zoom-era) spelling: rows hold them.
    """

    #: The grant is unusable (refresh failed, 401 after a refresh …): the host must relink.
    LINK_BROKEN = "link_broken"
    #: The tool's daily budget of creates/updates is spent (Zoom: 100, back at 09:00 JST).
    DAILY_LIMIT = "daily_limit"
    #: The tool did not answer usefully (5xx, timeout, rate limit, not JSON) on every attempt.
    UNAVAILABLE = "zoom_unavailable"
    #: The tool refused the request (any other 4xx).
    REFUSED = "zoom_refused"
    #: The meeting is running now, so the tool refuses to delete it.
    IN_PROGRESS = "in_progress"

    def text(self, tool: str) -> LazyString:
        """What it means for the host, translated when rendered (in a page or an email's language)."""
        texts = {
            MeetingFailure.LINK_BROKEN: _l("%(tool)sとの連携が切れています。再連携しないと、予約者にURLが届きません。", tool=tool),
            MeetingFailure.DAILY_LIMIT: _l("%(tool)sの1日の発行上限に達したため、発行できていません。", tool=tool),
            MeetingFailure.UNAVAILABLE: _l("%(tool)sが応答しなかったため、発行できていません。", tool=tool),
            MeetingFailure.REFUSED: _l("%(tool)sがミーティングの発行を受け付けませんでした。", tool=tool),
            MeetingFailure.IN_PROGRESS: _l("ミーティングが開催中です。"),
        }
        return texts[self]

    def delete_text(self, tool: str) -> LazyString:
        """Why the meeting could not be deleted on the tool, for the host."""
        if self == MeetingFailure.LINK_BROKEN:
            return _l("%(tool)sとの連携が切れているため、%(tool)s上のミーティングを削除できませんでした。"
                      "再連携すると削除できます。%(tool)sのサイトやアプリから削除することもできます。", tool=tool)
        if self == MeetingFailure.UNAVAILABLE:
            return _l("%(tool)sが応答しなかったため、削除できませんでした。", tool=tool)
        if self == MeetingFailure.IN_PROGRESS:
            return _l("ミーティングが開催中のため、削除できませんでした。終了後に自動で削除します。")
        return _l("%(tool)sが削除を受け付けませんでした。%(tool)sのサイトやアプリから削除してください。", tool=tool)


class Meeting(db.Model):
    """The one meeting of a slot on the host's video tool, shared by all its guests."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), unique=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: The tool's ``VideoTool.key`` (``zoom``, ``google_meet``).
    provider: Mapped[str] = mapped_column(String(20), default="zoom")
    status: Mapped[MeetingStatus] = mapped_column(Enum(MeetingStatus, native_enum=False, length=20),
                                                  default=MeetingStatus.ISSUING)
    #: The tool's id of the meeting (Zoom's numeric id as text; Google's event id).
    external_id: Mapped[str | None] = mapped_column(String(1024), index=True)
    join_url: Mapped[str] = mapped_column(Text, default="")
    #: Zoom's passcode ("" for tools without one).
    password: Mapped[str] = mapped_column(String(20), default="")
    #: Where the host manages it on the tool (Google Calendar's event page); "" when none.
    host_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: The title sent to the tool.
    topic: Mapped[str] = mapped_column(String(200), default="")
    #: Written into the meeting before the create call, so a retry finds a meeting that a crashed
    #: attempt created instead of creating a second one.
    issue_key: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    #: When the pre-flight check (before the URL emails) last ran.
    preflight_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: True when issued on a legacy platform Zoom sub-account (see the migration issue).
    legacy: Mapped[bool] = mapped_column(default=False)
    #: Created with registration (Zoom ``approval_type`` 0): each guest joins by their own registrant URL.
    with_registrants: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why the last attempt failed (None once issued); see ``last_error`` for the host's words.
    failure: Mapped[MeetingFailure | None] = mapped_column(Enum(MeetingFailure, native_enum=False, length=20))
    #: The raw error or event behind the current state, for staff (column ``last_error``).
    error_detail: Mapped[str] = mapped_column("last_error", Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    slot = relationship("Slot")

    @property
    def tool_name(self) -> str:
        from app.meetings.tools import tool_named

        return tool_named(self.provider).name

    @property
    def last_error(self) -> str:
        """Why the meeting has no URL (or, DELETE_FAILED, why it is still on the tool), in the current
        locale ("" when nothing failed)."""
        if not self.failure:
            return ""
        if self.status == MeetingStatus.DELETE_FAILED:
            return str(self.failure.delete_text(self.tool_name))
        return str(self.failure.text(self.tool_name))

    def record_failure(self, failure: MeetingFailure, detail: str) -> None:
        """An attempt failed: keep why (the code) and what the tool said (for staff)."""
        self.failure = failure
        self.error_detail = detail[:500]

    def mark_deleted(self, detail: str = "") -> None:
        """The meeting is gone (deleted by us or on the tool): its URL must never be handed out again."""
        self.status = MeetingStatus.DELETED
        self.deleted_at = clock.now()
        self.join_url = ""
        self.password = ""
        self.failure = None
        if detail:
            self.error_detail = detail


class ParticipantSession(db.Model):
    """One stay of one participant in a slot's meeting, from the tool's joined/left events.

    A person who leaves and rejoins makes a new session (Zoom gives a new ``participant_uuid``);
    the minutes attended are the sum of a booking's sessions.
    """

    __tablename__ = "participant_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    #: The guest this session is matched to (None: not matched to a booking).
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True, nullable=True)
    #: What makes a session one row whatever order and how often its events arrive
    #: (Zoom: the instance uuid + ``participant_uuid``, or ``user_id`` when that is missing).
    session_key: Mapped[str] = mapped_column(String(300))
    registrant_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    user_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: How it was matched: "registrant", "email", "name" (a guess: 推定), or "" (not matched).
    matched_by: Mapped[str] = mapped_column(String(12), default="", server_default="")

    __table_args__ = (UniqueConstraint("meeting_id", "session_key", name="uq_participant_sessions_key"),)
