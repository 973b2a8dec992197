"""Command-line tools: ``flask --app wsgi create-staff EMAIL`` and ``flask --app wsgi seed-demo``."""
import secrets
from datetime import timedelta

import click

from app import clock
from app.auth import accounts
from app.extensions import db

DEMO_HOST_EMAIL = "host@example.com"
DEMO_STAFF_EMAIL = "staff@example.com"
DEMO_PASSWORD = "demo-pass-2026"


def init_app(app) -> None:
    """Register the commands."""

    @app.cli.command("create-staff")
    @click.argument("email")
    @click.option("--password", help="Password (generated and printed when omitted).")
    @click.option("--name", default="運営スタッフ", show_default=True)
    def create_staff(email, password, name):
        """Create a staff account."""
        password = password or secrets.token_urlsafe(12)
        try:
            accounts.create_user(email, name, password, is_staff=True)
        except accounts.EmailTaken:
            raise click.ClickException(f"{email} is already registered") from None
        db.session.commit()
        click.echo(f"staff account created: {email} / {password}")

    @app.cli.command("seed-demo")
    def seed_demo():
        """Create the demo host and staff accounts with sample services (idempotent)."""
        from app.services.catalog import create_service
        from app.services.slots import add_slot

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
        db.session.commit()
        click.echo(f"demo host : {DEMO_HOST_EMAIL} / {DEMO_PASSWORD}")
        click.echo(f"demo staff: {DEMO_STAFF_EMAIL} / {DEMO_PASSWORD}")
