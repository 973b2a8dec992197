"""A host's personal Zoom link, and the meetings issued on it."""
import enum
from datetime import datetime

from flask_babel import LazyString, lazy_gettext as _l
from sqlalchemy import BigInteger, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime

#: Zoom user ``type`` values (zoom-facts §2): only 2 is paid with no 40-minute cut.
PLAN_BASIC = 1
PLAN_LICENSED = 2


class LinkStatus(str, enum.Enum):
    #: Linked and ON: meetings are issued and URLs sent.
    ACTIVE = "active"
    #: The grant stopped working (refresh failed, deauthorized …): the host must relink.
    NEEDS_RELINK = "needs_relink"
    #: Turned OFF by the host, but kept (with its grant) while meetings Zoom could not delete yet
    #: are retried; removed, and the grant revoked, once none is left. Reads as "no link".
    OFF = "off"


class LinkBreak(str, enum.Enum):
    """Why a link needs relinking: stored as a code, shown in the reader's language."""

    #: Refreshing the grant failed: it expired, or was revoked on Zoom's side.
    GRANT_LOST = "grant_lost"
    #: The same Zoom account was linked by another host account (Zoom keeps only the newest grant).
    TAKEN_OVER = "taken_over"

    @classmethod
    def text_of(cls, stored: str) -> LazyString | str:
        """The text of a stored code, translated when rendered; a sentence stored before the codes, as it is."""
        try:
            return _BREAK_TEXTS[cls(stored)]
        except ValueError:
            return stored


_BREAK_TEXTS = {
    LinkBreak.GRANT_LOST: _l("Zoomとの連携が切れました（認可の有効期限切れ、またはZoom側で取り消されました）。"),
    LinkBreak.TAKEN_OVER: _l("同じZoomアカウントが別のホストアカウントで連携されたため、連携が解除されました。"),
}


class ZoomConnection(db.Model):
    """A host's link to their own Zoom account (at most one per host; absent = OFF)."""

    __tablename__ = "zoom_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    status: Mapped[LinkStatus] = mapped_column(Enum(LinkStatus, native_enum=False, length=20),
                                               default=LinkStatus.ACTIVE)
    #: Why the link needs relinking: a ``LinkBreak`` code (rows from before the codes hold a
    #: Japanese sentence); read ``broken_reason_text``.
    broken_reason: Mapped[str] = mapped_column(String(300), default="")
    #: Zoom's user id; unique so one Zoom account can never be linked to two hosts.
    zoom_user_id: Mapped[str] = mapped_column(String(64), unique=True)
    zoom_account_id: Mapped[str] = mapped_column(String(64), default="")
    zoom_email: Mapped[str] = mapped_column(String(254), default="")
    #: Zoom plan ``type``: 1 Basic (40-minute cut), 2 Licensed, others unknown.
    plan_type: Mapped[int] = mapped_column(default=PLAN_BASIC)
    plan_checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    zoom_timezone: Mapped[str] = mapped_column(String(64), default="")
    #: Fernet-encrypted tokens (see app/crypto.py); never logged or rendered.
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(500), default="")
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: Bookings made at or after this moment get meetings automatically.
    applies_from: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    host = relationship("User")

    @property
    def is_active(self) -> bool:
        return self.status == LinkStatus.ACTIVE

    @property
    def has_grant(self) -> bool:
        """Its tokens may still be used: ON, or OFF while it deletes what it left on Zoom."""
        return self.status in (LinkStatus.ACTIVE, LinkStatus.OFF)

    @property
    def broken_reason_text(self) -> LazyString | str:
        """Why the link needs relinking, in the reader's language."""
        return LinkBreak.text_of(self.broken_reason)

    @property
    def is_basic(self) -> bool:
        """Everything but Licensed gets the 40-minute warning (unknown types too)."""
        return self.plan_type != PLAN_LICENSED


class MeetingStatus(str, enum.Enum):
    #: Recorded before calling Zoom, so a retried job reconciles instead of creating twice.
    ISSUING = "issuing"
    ISSUED = "issued"
    #: Deleted by us (OFF, slot cancelled) or found gone on Zoom.
    DELETED = "deleted"
    #: Could not be issued and no retry is planned; ``failure`` says why. A later attempt
    #: (pre-flight, send time, a new booking) may still issue it.
    FAILED = "failed"
    #: Should be gone (slot cancelled or emptied, link OFF) but Zoom did not delete it: still live
    #: on the host's Zoom. ``failure`` says why; retried, and the host can retry it by hand.
    DELETE_FAILED = "delete_failed"


class MeetingFailure(str, enum.Enum):
    """Why a slot's meeting has no URL: stored as a code, shown in the reader's language."""

    #: The grant is unusable (refresh failed, 401 code 124 after a refresh …): the host must relink.
    LINK_BROKEN = "link_broken"
    #: Zoom's 100 meeting creates/updates of the UTC day are spent (back at 09:00 JST).
    DAILY_LIMIT = "daily_limit"
    #: Zoom did not answer usefully (5xx, timeout, per-second 429, not JSON) on every attempt.
    ZOOM_UNAVAILABLE = "zoom_unavailable"
    #: Zoom refused the request (any other 4xx).
    ZOOM_REFUSED = "zoom_refused"
    #: The meeting is running now, so Zoom refuses to delete it (3002).
    IN_PROGRESS = "in_progress"

    @property
    def text(self) -> LazyString:
        """What it means for the host, translated when rendered (in a page or an email's language)."""
        return _FAILURE_TEXTS[self]

    @property
    def delete_text(self) -> LazyString:
        """Why the meeting could not be deleted on Zoom, for the host."""
        return _DELETE_TEXTS.get(self, _DELETE_TEXTS[MeetingFailure.ZOOM_REFUSED])


_FAILURE_TEXTS = {
    MeetingFailure.LINK_BROKEN: _l("Zoomとの連携が切れています。再連携しないと、予約者にURLが届きません。"),
    MeetingFailure.DAILY_LIMIT: _l("Zoomの1日の発行上限（100回）に達したため、発行できていません。"),
    MeetingFailure.ZOOM_UNAVAILABLE: _l("Zoomが応答しなかったため、発行できていません。"),
    MeetingFailure.ZOOM_REFUSED: _l("Zoomがミーティングの発行を受け付けませんでした。"),
    MeetingFailure.IN_PROGRESS: _l("ミーティングが開催中です。"),
}

_DELETE_TEXTS = {
    MeetingFailure.LINK_BROKEN: _l("Zoomとの連携が切れているため、Zoom上のミーティングを削除できませんでした。"
                                   "再連携すると削除できます。Zoomのサイトやアプリから削除することもできます。"),
    MeetingFailure.ZOOM_UNAVAILABLE: _l("Zoomが応答しなかったため、削除できませんでした。"),
    MeetingFailure.ZOOM_REFUSED: _l("Zoomが削除を受け付けませんでした。Zoomのサイトやアプリから削除してください。"),
    MeetingFailure.IN_PROGRESS: _l("ミーティングが開催中のため、削除できませんでした。終了後に自動で削除します。"),
}


class ZoomMeeting(db.Model):
    """The one Zoom meeting of a slot, shared by all its guests."""

    __tablename__ = "zoom_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), unique=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[MeetingStatus] = mapped_column(Enum(MeetingStatus, native_enum=False, length=20),
                                                  default=MeetingStatus.ISSUING)
    #: Zoom meeting ids exceed 32 bits (zoom-facts §3).
    zoom_meeting_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    join_url: Mapped[str] = mapped_column(Text, default="")
    password: Mapped[str] = mapped_column(String(20), default="")
    #: The topic sent to Zoom, also used to find a meeting created by a crashed attempt.
    topic: Mapped[str] = mapped_column(String(200), default="")
    #: Written into the agenda before the create call, so a retry finds a meeting that a crashed
    #: attempt created instead of creating a second one.
    issue_key: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(default=0)
    #: When the pre-flight check (about 27 h before the start) last ran.
    preflight_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: True when issued on a legacy platform sub-account (see the migration issue).
    legacy: Mapped[bool] = mapped_column(default=False)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why the last attempt failed (None once issued); see ``last_error`` for the host's words.
    failure: Mapped[MeetingFailure | None] = mapped_column(Enum(MeetingFailure, native_enum=False, length=20))
    #: The raw error or event behind the current state, for staff (column ``last_error``).
    error_detail: Mapped[str] = mapped_column("last_error", Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    slot = relationship("Slot")

    @property
    def last_error(self) -> str:
        """Why the meeting has no URL (or, DELETE_FAILED, why it is still on Zoom), in the current
        locale ("" when nothing failed)."""
        if not self.failure:
            return ""
        return str(self.failure.delete_text if self.status == MeetingStatus.DELETE_FAILED else self.failure.text)

    def record_failure(self, failure: MeetingFailure, detail: str) -> None:
        """An attempt failed: keep why (the code) and what Zoom said (for staff)."""
        self.failure = failure
        self.error_detail = detail[:500]

    def mark_deleted(self, detail: str = "") -> None:
        """The meeting is gone (deleted by us or on Zoom): its URL must never be handed out again."""
        self.status = MeetingStatus.DELETED
        self.deleted_at = clock.now()
        self.join_url = ""
        self.password = ""
        self.failure = None
        if detail:
            self.error_detail = detail


class LegacyStatus(str, enum.Enum):
    #: Still issuing URLs on the platform's sub-account.
    ACTIVE = "active"
    #: The host turned it OFF before the release.
    OFF = "off"
    #: Turned off by the release of personal linking.
    RELEASED = "released"


class LegacyZoomLink(db.Model):
    """The old link to a platform-provided Zoom sub-account, replaced by personal linking."""

    __tablename__ = "legacy_zoom_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    sub_account_email: Mapped[str] = mapped_column(String(254))
    status: Mapped[LegacyStatus] = mapped_column(Enum(LegacyStatus, native_enum=False, length=20),
                                                 default=LegacyStatus.ACTIVE)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    host = relationship("User")

    @property
    def is_active(self) -> bool:
        return self.status == LegacyStatus.ACTIVE


class MigrationNotice(db.Model):
    """The announced deadline of the move from legacy links to personal linking (one row)."""

    __tablename__ = "migration_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The release date (hosts' local calendar date, stored as UTC midnight of that JST day).
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
