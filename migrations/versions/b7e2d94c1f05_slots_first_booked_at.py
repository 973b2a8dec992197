"""slots: when their earliest booking was made

The Zoom settings page lists the upcoming bookings made before the host linked Zoom. Finding
them probed ``ix_bookings_slot_created`` once per upcoming Zoom slot (1,140 probes, ~1.3 ms
of PostgreSQL's CPU for the benchmark's large host, on every view of the page). Only a slot
whose earliest booking came before the link can hold one, and its row says so now.

Revision ID: b7e2d94c1f05
Revises: a3c4e1f27b90
Create Date: 2026-11-25 21:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e2d94c1f05'
down_revision = 'a3c4e1f27b90'
branch_labels = None
depends_on = None

slots = sa.table("slots", sa.column("id", sa.Integer), sa.column("first_booked_at", sa.DateTime(timezone=True)))
bookings = sa.table("bookings", sa.column("slot_id", sa.Integer), sa.column("created_at", sa.DateTime(timezone=True)))


def upgrade():
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_booked_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(slots.update().values(first_booked_at=sa.select(sa.func.min(bookings.c.created_at))
                                     .where(bookings.c.slot_id == slots.c.id).scalar_subquery()))


def downgrade():
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_column('first_booked_at')
