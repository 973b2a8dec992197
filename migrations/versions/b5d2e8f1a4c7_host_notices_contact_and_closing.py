"""hosts and guests reach each other: notice settings, a contact (reply-to) address, closing an account

``users``: ``contact_email`` (guests' replies; "" = the login address), ``show_contact_publicly``,
``notify_bookings``/``notify_cancellations`` (on), ``notify_digest`` (off), ``deleted_at``.
``bookings.cancelled_by_host``: a removal by the host is no cancellation notice to the host.
Existing rows get the defaults.

Revision ID: b5d2e8f1a4c7
Revises: a3f9c1d7e5b2
Create Date: 2026-12-09 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b5d2e8f1a4c7'
down_revision = 'a3f9c1d7e5b2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_email', sa.String(length=254), server_default='', nullable=False))
        batch_op.add_column(sa.Column('show_contact_publicly', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('notify_bookings', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('notify_cancellations', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.add_column(sa.Column('notify_digest', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_by_host', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('cancelled_by_host')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('notify_digest')
        batch_op.drop_column('notify_cancellations')
        batch_op.drop_column('notify_bookings')
        batch_op.drop_column('show_contact_publicly')
        batch_op.drop_column('contact_email')
