"""guests move their own booking: a per-service cutoff

``services.reschedule_cutoff_hours``: guests may move their booking to another date of the service
until this many hours before their date (default 24); NULL turns it off. Existing services get 24.

Revision ID: c7e3a9f2b1d8
Revises: b5d2e8f1a4c7
Create Date: 2026-12-10 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c7e3a9f2b1d8'
down_revision = 'b5d2e8f1a4c7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reschedule_cutoff_hours', sa.Integer(), server_default='24', nullable=True))


def downgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('reschedule_cutoff_hours')
