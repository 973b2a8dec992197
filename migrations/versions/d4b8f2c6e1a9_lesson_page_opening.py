"""the guest's lesson page: when 「参加する」 opens, and when the guest first used it

``services.join_opens_minutes`` (default 10): the lesson page enables its join button this long
before the start. ``bookings.join_opened_at``: when the guest first pressed it (NULL: not yet).

Revision ID: d4b8f2c6e1a9
Revises: c7e3a9f2b1d8
Create Date: 2026-12-11 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4b8f2c6e1a9'
down_revision = 'c7e3a9f2b1d8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('join_opens_minutes', sa.Integer(), server_default='10', nullable=False))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('join_opened_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('join_opened_at')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('join_opens_minutes')
