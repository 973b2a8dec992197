"""users: email confirmation and the staff's second factor

A host who signs up confirms the email address before the public pages take bookings
(``email_verified_at``). Every account that exists before this revision counts as confirmed
(its confirmation time is its creation time), so nothing that works today stops working.
Staff accounts get an encrypted TOTP secret and the last time step accepted (a code works once).

Revision ID: e41a7c9d2b60
Revises: b7e2d94c1f05
Create Date: 2026-11-26 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e41a7c9d2b60'
down_revision = 'b7e2d94c1f05'
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("created_at", sa.DateTime(timezone=True)),
                 sa.column("email_verified_at", sa.DateTime(timezone=True)))


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
    op.execute(users.update().values(email_verified_at=users.c.created_at))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('email_verified_at')
