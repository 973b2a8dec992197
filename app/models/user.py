"""Accounts: hosts (who sell services) and staff (who run the platform)."""
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app import clock
from app.extensions import db
from app.models.types import UTCDateTime


class User(UserMixin, db.Model):
    """A person who logs in: a host, or staff when ``is_staff`` is set."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Name shown to guests in emails ("ホスト名").
    display_name: Mapped[str] = mapped_column(String(80))
    #: IANA time zone the host sees times in.
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    is_staff: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    services = relationship("Service", back_populates="host", order_by="Service.id")

    def set_password(self, password: str, method: str | None = None) -> None:
        """Store a salted hash of ``password``."""
        kwargs = {"method": method} if method else {}
        self.password_hash = generate_password_hash(password, **kwargs)

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"
