"""A host's link to their own Google account, for Google Meet links on their calendar."""
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.meeting import VideoLinkMixin


class GoogleConnection(VideoLinkMixin, db.Model):
    """A host's Google link (at most one per host; absent = OFF).

    Meetings are events with a Meet conference on the host's primary calendar
    (google-meet-facts §3); the host's account type decides Meet's time limit (§6).
    """

    __tablename__ = "google_connections"

    #: Google's stable account id (the ID token's ``sub``); unique so one Google account is never
    #: linked to two hosts.
    google_subject: Mapped[str] = mapped_column(String(255), unique=True)
    google_email: Mapped[str] = mapped_column(String(254), default="")
    #: The Workspace domain (the ID token's ``hd``); "" for a free personal account.
    hosted_domain: Mapped[str] = mapped_column(String(253), default="", server_default="")

    tool_name = "Google Meet"

    @property
    def is_workspace(self) -> bool:
        """A Workspace account: no 60-minute cut on group calls (google-meet-facts §6)."""
        return bool(self.hosted_domain)
