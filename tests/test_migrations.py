"""Upgrading a database that already holds data: rows kept, new columns filled."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from config import TestConfig

#: The revision before ``session tokens``, whose batch migration rebuilds ``users`` on SQLite.
BEFORE_USERS_REBUILD = "ccebce1282d7"


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A new empty database of the suite's kind (its own SQLite file, or a new PostgreSQL database)."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'upgrade.db'}"
        return
    name = f"upgrade_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


def test_upgrading_a_database_with_data_keeps_its_rows_and_fills_new_columns(empty_database_url, redis_url):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=empty_database_url, REDIS_URL=redis_url)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sqlite = empty_database_url.startswith("sqlite")

    def at(moment):  # as the app stores it (``UTCDateTime``): SQLite keeps naive UTC
        return moment.replace(tzinfo=None) if sqlite else moment

    with app.app_context():
        upgrade(revision=BEFORE_USERS_REBUILD)
        tables = sa.MetaData()
        tables.reflect(bind=db.engine, only=["users", "services", "slots", "bookings"])
        users, services, slots, bookings = (tables.tables[n] for n in ("users", "services", "slots", "bookings"))
        with db.engine.begin() as connection:
            connection.execute(users.insert(), [{
                "id": 1, "email": "host@example.com", "password_hash": "x", "display_name": "ホスト",
                "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "created_at": at(now)}])
            connection.execute(services.insert(), [{
                "id": 1, "host_id": 1, "public_id": "p1", "kind": "ONLINE", "title": "講座", "description": "",
                "duration_minutes": 60, "capacity": 5, "venue": "ZOOM", "host_notes": "", "created_at": at(now)}])
            connection.execute(slots.insert(), [
                {"id": slot_id, "service_id": 1, "starts_at": at(now + timedelta(days=3)), "capacity": 5,
                 "booked_count": booked, "status": "OPEN", "created_at": at(now - timedelta(days=9))}
                for slot_id, booked in ((1, 2), (2, 0))])
            connection.execute(bookings.insert(), [
                {"id": n, "slot_id": 1, "guest_name": f"予約者 {n}", "guest_email": f"g{n}@example.com",
                 "status": "CONFIRMED", "cancel_token": f"c{n}", "join_token": f"j{n}",
                 "created_at": at(now - timedelta(days=n))} for n in (1, 2)])
        db.engine.dispose()

        upgrade()  # to the newest revision

        with db.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM bookings")).scalar() == 2
            token = connection.execute(sa.text("SELECT session_token FROM users WHERE id = 1")).scalar()
            first_booked = dict(connection.execute(sa.text("SELECT id, first_booked_at FROM slots")).all())
        db.engine.dispose()
    assert token  # every existing account got one
    assert first_booked[2] is None  # never booked
    earliest = first_booked[1]
    earliest = datetime.fromisoformat(earliest) if isinstance(earliest, str) else earliest
    assert at(earliest) == at(now - timedelta(days=2))  # the earlier of its two bookings


#: The revision before email confirmation (``users.email_verified_at``).
BEFORE_EMAIL_CONFIRMATION = "b7e2d94c1f05"


def test_accounts_from_before_email_confirmation_count_as_confirmed(empty_database_url, redis_url):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=empty_database_url, REDIS_URL=redis_url)
    created = datetime(2026, 5, 1, 9, 30, tzinfo=timezone.utc)
    sqlite = empty_database_url.startswith("sqlite")
    with app.app_context():
        upgrade(revision=BEFORE_EMAIL_CONFIRMATION)
        users = sa.Table("users", sa.MetaData(), autoload_with=db.engine)
        with db.engine.begin() as connection:
            connection.execute(users.insert(), [{
                "id": n, "email": f"host{n}@example.com", "password_hash": "x", "display_name": "ホスト",
                "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": n == 2, "session_token": f"token-{n}",
                "created_at": created.replace(tzinfo=None) if sqlite else created} for n in (1, 2)])
        db.engine.dispose()

        upgrade()

        with db.engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT email_verified_at, totp_secret FROM users ORDER BY id")).all()
        db.engine.dispose()
    for verified_at, totp_secret in rows:
        verified_at = datetime.fromisoformat(verified_at) if isinstance(verified_at, str) else verified_at
        if verified_at.tzinfo is None:  # SQLite keeps naive UTC
            verified_at = verified_at.replace(tzinfo=timezone.utc)
        assert verified_at == created  # confirmed since it was created: it works as before
        assert totp_secret is None  # staff set up their second factor at their next login where required


#: The revision before the guest side's profile and service details (``users.bio``/``photo``,
#: ``services.venue_address``/``cancellation_policy``).
BEFORE_GUEST_SIDE = "c4d1a9e2f7b3"


def test_hosts_and_services_from_before_the_guest_side_get_empty_profiles_and_details(empty_database_url,
                                                                                     redis_url):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=empty_database_url, REDIS_URL=redis_url)
    created = datetime(2026, 5, 1, 9, 30)
    with app.app_context():
        upgrade(revision=BEFORE_GUEST_SIDE)
        tables = sa.MetaData()
        tables.reflect(bind=db.engine, only=["users", "services"])
        users, services = tables.tables["users"], tables.tables["services"]
        with db.engine.begin() as connection:
            connection.execute(users.insert(), [{
                "id": 1, "email": "host@example.com", "password_hash": "x", "display_name": "山田 花子",
                "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "session_token": "token-1",
                "created_at": created, "email_verified_at": created}])
            connection.execute(services.insert(), [{
                "id": n, "host_id": 1, "public_id": f"p{n}", "kind": kind, "title": f"講座{n}", "description": "説明",
                "duration_minutes": 60, "capacity": 5, "venue": venue, "host_notes": "持ち物", "created_at": created}
                for n, kind, venue in ((1, "ONLINE", "ZOOM"), (2, "CLASS_EVENT", "IN_PERSON"))])
        db.engine.dispose()

        upgrade()

        with db.engine.connect() as connection:
            host = connection.execute(sa.text(
                "SELECT display_name, bio, photo, photo_digest FROM users WHERE id = 1")).one()
            details = connection.execute(sa.text(
                "SELECT id, title, host_notes, venue_address, cancellation_policy FROM services ORDER BY id")).all()
        # The app reads them as before: the new columns' defaults, nothing else changed.
        from app.models import Service, User
        assert db.session.get(User, 1).bio == "" and db.session.get(Service, 2).venue_address == ""
        db.session.remove()
        db.engine.dispose()
    assert tuple(host) == ("山田 花子", "", None, None)
    assert [tuple(row) for row in details] == [(1, "講座1", "持ち物", "", ""), (2, "講座2", "持ち物", "", "")]


#: The revision before meetings became provider-neutral (``zoom_meetings`` → ``meetings``).
BEFORE_MEETINGS_WING = "d8f3b6a1c2e9"


def test_zoom_meetings_and_their_emails_carry_over_to_the_provider_neutral_meetings(empty_database_url, redis_url):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=empty_database_url, REDIS_URL=redis_url)
    created = datetime(2026, 5, 1, 9, 30)
    with app.app_context():
        upgrade(revision=BEFORE_MEETINGS_WING)
        tables = sa.MetaData()
        tables.reflect(bind=db.engine, only=["users", "services", "slots", "zoom_meetings", "deliveries"])
        users, services, slots, meetings, deliveries = (
            tables.tables[n] for n in ("users", "services", "slots", "zoom_meetings", "deliveries"))
        with db.engine.begin() as connection:
            connection.execute(users.insert(), [{
                "id": 1, "email": "host@example.com", "password_hash": "x", "display_name": "山田 花子",
                "timezone": "Asia/Tokyo", "locale": "ja", "is_staff": False, "session_token": "token-1",
                "created_at": created, "email_verified_at": created}])
            connection.execute(services.insert(), [{
                "id": 1, "host_id": 1, "public_id": "p1", "kind": "ONLINE", "title": "講座", "description": "",
                "duration_minutes": 60, "capacity": 5, "venue": "ZOOM", "host_notes": "", "created_at": created}])
            connection.execute(slots.insert(), [
                {"id": n, "service_id": 1, "starts_at": created + timedelta(days=n), "capacity": 5, "booked_count": 0,
                 "status": "OPEN", "created_at": created} for n in (1, 2, 3)])
            common = {"host_id": 1, "topic": "講座", "attempts": 1, "legacy": False, "created_at": created,
                      "password": "", "join_url": "", "issue_key": "", "last_error": "", "zoom_meeting_id": None,
                      "failure": None, "issued_at": None}
            connection.execute(meetings.insert(), [
                # Zoom ids exceed 32 bits (zoom-facts §3): they must survive as text exactly.
                {**common, "id": 7, "slot_id": 1, "status": "ISSUED", "zoom_meeting_id": 81234567890123,
                 "join_url": "https://zoom.us/j/81234567890123?pwd=x", "password": "pw", "issued_at": created},
                {**common, "id": 8, "slot_id": 2, "status": "FAILED", "failure": "ZOOM_UNAVAILABLE",
                 "last_error": "ZoomRetryable (HTTP 503)"},
                {**common, "id": 9, "slot_id": 3, "status": "DELETE_FAILED", "failure": "ZOOM_REFUSED",
                 "zoom_meeting_id": 5, "legacy": True}])
            row = {"status": "PENDING", "to_email": "g@example.com", "to_name": "", "locale": "ja", "host_id": 1,
                   "slot_id": 1, "payload": {}, "due_at": created, "attempts": 0, "last_error": "", "created_at": created}
            connection.execute(deliveries.insert(), [
                {**row, "id": 1, "kind": "zoom_url", "dedupe_key": "zoom_url:12"},
                {**row, "id": 2, "kind": "zoom_url_waiting", "dedupe_key": "zoom_url_waiting:12:1"},
                {**row, "id": 3, "kind": "zoom_trouble", "dedupe_key": "zoom_trouble:1:link_broken:0"},
                {**row, "id": 4, "kind": "zoom_host_notice", "dedupe_key": None},
                {**row, "id": 5, "kind": "zoom_relink_needed", "dedupe_key": None}])
        db.engine.dispose()

        upgrade()

        from app.models import Delivery, Meeting, MeetingFailure, MeetingStatus
        carried = {m.id: m for m in db.session.scalars(sa.select(Meeting))}
        assert sorted(carried) == [7, 8, 9]
        assert (carried[7].provider, carried[7].external_id, carried[7].status) == ("zoom", "81234567890123",
                                                                                    MeetingStatus.ISSUED)
        assert carried[7].join_url.endswith("81234567890123?pwd=x") and carried[7].password == "pw"
        assert carried[8].external_id is None and carried[8].failure == MeetingFailure.UNAVAILABLE
        with app.test_request_context():  # the host's words, in the request's language
            assert carried[8].last_error == "Zoomが応答しなかったため、発行できていません。"
        assert carried[9].failure == MeetingFailure.REFUSED and carried[9].legacy
        assert {d.id: (d.kind, d.dedupe_key) for d in db.session.scalars(sa.select(Delivery))} == {
            1: ("meeting_url", "meeting_url:12"), 2: ("meeting_url_waiting", "meeting_url_waiting:12:1"),
            3: ("meeting_trouble", "meeting_trouble:1:link_broken:0"), 4: ("meeting_host_notice", None),
            5: ("zoom_relink_needed", None)}
        # A new row gets the next id (PostgreSQL's sequence moved past the copied ids).
        db.session.execute(sa.delete(Meeting).where(Meeting.id == 8))
        fresh = Meeting(slot_id=2, host_id=1, provider="google_meet")
        db.session.add(fresh)
        db.session.commit()
        assert fresh.id == 10
        db.session.remove()
        db.engine.dispose()
