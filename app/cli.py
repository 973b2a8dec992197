"""Command-line tools: ``flask --app wsgi create-staff EMAIL``, ``reset-staff-totp EMAIL``, ``seed-demo``,
``migration …`` and ``bounces serve|read``."""
import secrets
from datetime import timedelta

import click

from app import clock, limits
from app.auth import accounts, passwords, totp
from app.extensions import db
from app.queue import leave_to_the_sweep

DEMO_HOST_EMAIL = "host@example.com"
DEMO_STAFF_EMAIL = "staff@example.com"
DEMO_PASSWORD = "demo-pass-2026"
LEGACY_HOSTS = ("legacy1@example.com", "legacy2@example.com")


def seed_legacy_hosts() -> None:
    """Hosts still on the old platform sub-account link, with legacy-issued URLs and pending emails."""
    from app.booking.booking import book
    from app.mail.outbox import queue_email
    from app.models import LegacyZoomLink, Meeting, MeetingStatus
    from app.services.catalog import create_service
    from app.services.slots import add_slot
    from app.meetings.timing import url_due_at

    for n, email in enumerate(LEGACY_HOSTS, start=1):
        if accounts.find_user(email) is not None:
            continue
        host = accounts.create_user(email, f"旧連携ホスト{n}", DEMO_PASSWORD)
        db.session.add(LegacyZoomLink(host_id=host.id, sub_account_email=f"sub{n}@platform-zoom.example"))
        service = create_service(host, kind="online", title=f"オンライン英会話{n}", description="",
                                 duration_minutes=50, capacity=4, venue="zoom", host_notes="")
        start = clock.now().replace(minute=0, second=0, microsecond=0)
        for days in (2, 5):
            slot = add_slot(service, start + timedelta(days=days, hours=1))
            zoom_id = 90000000000 + slot.id * 10 + n
            db.session.add(Meeting(slot_id=slot.id, host_id=host.id, provider="zoom", status=MeetingStatus.ISSUED,
                                   legacy=True, external_id=str(zoom_id), join_url=f"https://zoom.us/j/{zoom_id}?pwd=legacy",
                                   password="legacy", issued_at=clock.now()))
            db.session.commit()
            booking = book(service, slot.id, f"生徒{n}-{days}", f"student{n}{days}@example.com")
            queue_email("meeting_url", to_email=booking.guest_email, to_name=booking.guest_name, host_id=host.id,
                        booking_id=booking.id, slot_id=slot.id, due_at=url_due_at(slot),
                        dedupe_key=f"meeting_url:{booking.id}")
            db.session.commit()


def init_app(app) -> None:
    """Register the commands."""

    @app.cli.command("create-staff")
    @click.argument("email")
    @click.option("--password", help="Password (generated and printed when omitted).")
    @click.option("--name", default="運営スタッフ", show_default=True)
    def create_staff(email, password, name):
        """Create a staff account."""
        password = password or secrets.token_urlsafe(12)
        problem = passwords.weakness(password, email)
        if problem:
            raise click.ClickException(problem)
        try:
            accounts.create_user(email, name, password, is_staff=True)
        except accounts.EmailTaken:
            raise click.ClickException(f"{email} is already registered") from None
        db.session.commit()
        click.echo(f"staff account created: {email} / {password}")

    @app.cli.command("reset-staff-totp")
    @click.argument("email")
    def reset_staff_totp(email):
        """Forget a staff account's authenticator app (a lost phone): it sets one up at the next login."""
        user = accounts.find_user(email)
        if user is None or not user.is_staff:
            raise click.ClickException(f"{email} is not a staff account")
        totp.reset(user)
        user.end_sessions()
        db.session.commit()
        click.echo(f"second factor reset: {user.email} sets up an authenticator app at the next login")

    @app.cli.command("seed-demo")
    def seed_demo():
        """Create the demo host and staff accounts with sample services (idempotent).

        ``make run`` seeds before honcho starts Redis: the demo's emails are left to the
        scheduler's outbox sweep instead of being enqueued.
        """
        from app.services.catalog import create_service
        from app.services.slots import add_slot

        with leave_to_the_sweep(), limits.not_counted():
            if accounts.find_user(DEMO_STAFF_EMAIL) is None:
                accounts.create_user(DEMO_STAFF_EMAIL, "運営スタッフ", DEMO_PASSWORD, is_staff=True)
            host = accounts.find_user(DEMO_HOST_EMAIL)
            if host is None:
                host = accounts.create_user(DEMO_HOST_EMAIL, "山田 花子", DEMO_PASSWORD)
                online = create_service(
                    host, kind="online", title="はじめてのオンライン書道レッスン", description="自宅で楽しむ書道入門です。",
                    duration_minutes=60, capacity=5, venue="zoom",
                    host_notes="筆ペンと半紙をご用意ください。\n開始5分前から入室できます。")
                manual = create_service(
                    host, kind="private", title="個別相談（Google Meet）", description="30分の個別相談です。",
                    duration_minutes=30, capacity=1, venue="manual_url",
                    host_notes="当日はこちらのURLからご参加ください: https://meet.example.com/abc-defg-hij")
                start = clock.now().replace(minute=0, second=0, microsecond=0)
                for days in (1, 3, 7):
                    add_slot(online, start + timedelta(days=days, hours=2))
                    add_slot(manual, start + timedelta(days=days, hours=4))
            seed_legacy_hosts()
            db.session.commit()
        click.echo(f"demo host : {DEMO_HOST_EMAIL} / {DEMO_PASSWORD}")
        click.echo(f"demo staff: {DEMO_STAFF_EMAIL} / {DEMO_PASSWORD}")
        click.echo(f"legacy hosts (old platform Zoom link): {', '.join(LEGACY_HOSTS)} / {DEMO_PASSWORD}")

    migration = click.Group("migration", help="Move hosts from legacy sub-accounts to personal Zoom linking.")
    app.cli.add_command(migration)

    @migration.command("announce")
    @click.option("--deadline", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
                  help="Release date (YYYY-MM-DD, Japan time).")
    def announce(deadline):
        """Email every affected host the notice (once per deadline) and show the banner."""
        from app.zoom import legacy

        emailed = legacy.announce(deadline.date())
        for host in emailed:
            click.echo(f"notified {host.email}")
        click.echo(f"deadline {deadline.date().isoformat()}: {len(emailed)} host(s) notified"
                   + ("" if emailed else " (everyone affected was already told)"))

    @migration.command("release")
    def release():
        """Turn legacy links off, invalidate legacy URLs, and tell each host (once)."""
        from app.zoom import legacy

        done = legacy.release()
        for item in done:
            click.echo(f"released {item.host.email}: {item.meetings} legacy URL(s) invalidated, "
                       f"{item.emails_cancelled} automatic email(s) cancelled")
        click.echo(f"{len(done)} legacy link(s) released" + ("" if done else " (nothing left to release)"))

    bounces = click.Group("bounces", help="Read the bounces (DSNs) that come back to MAIL_BOUNCE_ADDRESS.")
    app.cli.add_command(bounces)

    @bounces.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", default=8026, show_default=True, type=click.IntRange(1, 65535), help="SMTP port.")
    def serve_bounces(host, port):
        """Take bounces over SMTP (the MX of the bounce address, or the relay's forward) and mark them."""
        from flask import current_app

        from app.mail.bounce_server import serve

        serve(current_app._get_current_object(), host, port)

    @bounces.command("read")
    @click.argument("message", type=click.File("rb"), default="-")
    def read_bounce(message):
        """Read one bounce from a file or standard input (a relay's pipe delivery) and mark it."""
        from sqlalchemy.exc import SQLAlchemyError

        from app.mail.bounces import MAX_BYTES, read

        raw = message.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise click.ClickException(f"larger than {MAX_BYTES} bytes: not a bounce")
        try:
            outcomes = read(raw)
        except SQLAlchemyError:
            # EX_TEMPFAIL: a mail server delivering through a pipe keeps the bounce and tries again.
            click.echo("the database did not answer: try again later", err=True)
            raise SystemExit(75) from None
        for outcome, delivery_id in outcomes:
            click.echo(f"{outcome.value}" + (f": delivery {delivery_id}" if delivery_id is not None else ""))
