"""the guest side: the host's profile (bio, photo) and what a guest reads before booking

``users.bio``, ``users.photo`` (a small re-encoded JPEG) and ``users.photo_digest`` (its URL);
``services.venue_address`` (where an in-person service takes place) and
``services.cancellation_policy`` (the host's own words). Existing rows get empty texts and no photo.

Revision ID: d8f3b6a1c2e9
Revises: c4d1a9e2f7b3
Create Date: 2026-12-07 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd8f3b6a1c2e9'
down_revision = 'c4d1a9e2f7b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bio', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('photo', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('photo_digest', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_photo_digest'), ['photo_digest'], unique=False)
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('venue_address', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('cancellation_policy', sa.Text(), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('cancellation_policy')
        batch_op.drop_column('venue_address')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_photo_digest'))
        batch_op.drop_column('photo_digest')
        batch_op.drop_column('photo')
        batch_op.drop_column('bio')
