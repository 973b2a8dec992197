"""Test data builders: each returns a committed row with sensible defaults."""
import itertools
from datetime import timedelta

from app import clock
from app.auth import accounts
from app.booking import booking as bookings
from app.extensions import db
from app.models import Service, Slot
from app.services.catalog import create_service
from app.services.slots import add_slot

PASSWORD = "correct-horse-42"
_seq = itertools.count(1)


def make_host(email: str | None = None, name: str = "テストホスト", **extra):
    """A host account with password ``PASSWORD``."""
    user = accounts.create_user(email or f"host{next(_seq)}@example.com", name, PASSWORD, **extra)
    db.session.commit()
    return user


def make_service(host, **values) -> Service:
    """An online Zoom service of ``host`` (override any field)."""
    defaults = dict(kind="online", title="オンライン英会話", description="", duration_minutes=60,
                    capacity=3, venue="zoom", host_notes="")
    defaults.update(values)
    service = create_service(host, **defaults)
    db.session.commit()
    return service


def make_slot(service, starts_in: timedelta = timedelta(days=2), **values) -> Slot:
    """A slot of ``service`` starting ``starts_in`` from now."""
    slot = add_slot(service, clock.now().replace(microsecond=0) + starts_in)
    for name, value in values.items():
        setattr(slot, name, value)
    db.session.commit()
    return slot


def make_booking(slot, name: str = "予約 太郎", email: str | None = None):
    """A confirmed booking through the real booking function (queues the confirmation)."""
    return bookings.book(slot.service, slot.id, name, email or f"guest{next(_seq)}@example.com")
