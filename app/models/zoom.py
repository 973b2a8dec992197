"""A host's personal Zoom link, and the legacy platform sub-accounts it replaces."""
import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import clock
from app.extensions import db
from app.models.meeting import VideoLinkMixin
from app.models.types import UTCDateTime

#: Zoom user ``type`` values (zoom-facts §2): only 2 is paid with no 40-minute cut.
PLAN_BASIC = 1
PLAN_LICENSED = 2


class ZoomConnection(VideoLinkMixin, db.Model):
    """A host's link to their own Zoom account (at most one per host; absent = OFF)."""

    __tablename__ = "zoom_connections"

    #: Zoom's user id; unique so one Zoom account can never be linked to two hosts.
    zoom_user_id: Mapped[str] = mapped_column(String(64), unique=True)
    zoom_account_id: Mapped[str] = mapped_column(String(64), default="")
    zoom_email: Mapped[str] = mapped_column(String(254), default="")
    #: Zoom plan ``type``: 1 Basic (40-minute cut), 2 Licensed, others unknown.
    plan_type: Mapped[int] = mapped_column(default=PLAN_BASIC)
    plan_checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    zoom_timezone: Mapped[str] = mapped_column(String(64), default="")

    tool_name = "Zoom"

    @property
    def is_basic(self) -> bool:
        """Everything but Licensed gets the 40-minute warning (unknown types too)."""
        return self.plan_type != PLAN_LICENSED


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
