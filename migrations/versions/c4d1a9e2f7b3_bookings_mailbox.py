"""bookings: the mailbox a guest email delivers to

One confirmed booking per slot and *mailbox*: ``a+1@example.com`` and ``a+2@example.com`` reach
the same inbox, so a bot could otherwise fill a slot (and that inbox) with one address. The
unique index moves from the typed address to the mailbox (lower-cased, ``+tag`` removed).

Revision ID: c4d1a9e2f7b3
Revises: e41a7c9d2b60
Create Date: 2026-12-06 12:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d1a9e2f7b3'
down_revision = 'e41a7c9d2b60'
branch_labels = None
depends_on = None

bookings = sa.table("bookings", sa.column("id", sa.Integer), sa.column("slot_id", sa.Integer),
                    sa.column("guest_email", sa.String), sa.column("status", sa.String),
                    sa.column("mailbox", sa.String))
CONFIRMED = sa.text("status = 'CONFIRMED'")


def _mailbox(email: str) -> str:
    # As app.limits.mailbox_of at the time of writing (a migration does not import the app).
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if local else email.strip().lower()


def upgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mailbox', sa.String(length=254), nullable=True))
    connection = op.get_bind()
    seen = set()
    for row in connection.execute(sa.select(bookings.c.id, bookings.c.slot_id, bookings.c.guest_email,
                                            bookings.c.status).order_by(bookings.c.id)):
        mailbox = _mailbox(row.guest_email)
        if row.status == "CONFIRMED":
            if (row.slot_id, mailbox) in seen:
                mailbox = row.guest_email  # booked twice through +tags before this rule: both are kept
            seen.add((row.slot_id, mailbox))
        connection.execute(bookings.update().where(bookings.c.id == row.id).values(mailbox=mailbox))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.alter_column('mailbox', existing_type=sa.String(length=254), nullable=False)
    op.drop_index('uq_bookings_slot_email_confirmed', table_name='bookings')
    op.create_index('uq_bookings_slot_mailbox_confirmed', 'bookings', ['slot_id', 'mailbox'], unique=True,
                    sqlite_where=CONFIRMED, postgresql_where=CONFIRMED)


def downgrade():
    op.drop_index('uq_bookings_slot_mailbox_confirmed', table_name='bookings')
    op.create_index('uq_bookings_slot_email_confirmed', 'bookings', ['slot_id', 'guest_email'], unique=True,
                    sqlite_where=CONFIRMED, postgresql_where=CONFIRMED)
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('mailbox')
