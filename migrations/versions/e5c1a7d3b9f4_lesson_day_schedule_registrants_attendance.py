"""the lesson day: reminder schedule, per-guest join links, attendance, DSN bounces

- ``services.url_lead_hours`` (24/48/72, default 24), ``services.reminder_minutes`` ("60,10"),
  ``services.per_guest_links`` (Zoom registrants).
- ``meetings.with_registrants``; ``bookings.registrant_id/registrant_join_url/registrant_meeting_id``.
- ``bookings.attendance/attended_minutes/attendance_estimated/attendance_by_host`` and the table
  ``participant_sessions`` (one stay of one participant, from the tool's events).
- ``deliveries.bounced_at/bounce_reason``: a DSN that came back after sending.

Revision ID: e5c1a7d3b9f4
Revises: d4b8f2c6e1a9
Create Date: 2026-12-06 17:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


revision = 'e5c1a7d3b9f4'
down_revision = 'd4b8f2c6e1a9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url_lead_hours', sa.Integer(), server_default='24', nullable=False))
        batch_op.add_column(sa.Column('reminder_minutes', sa.String(length=40), server_default='', nullable=False))
        batch_op.add_column(sa.Column('per_guest_links', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('with_registrants', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registrant_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('registrant_join_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('registrant_meeting_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('attendance', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('attended_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attendance_estimated', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('attendance_by_host', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('bounce_reason', sa.String(length=200), server_default='', nullable=False))
    op.create_table(
        'participant_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('booking_id', sa.Integer(), nullable=True),
        sa.Column('session_key', sa.String(length=300), nullable=False),
        sa.Column('registrant_id', sa.String(length=64), server_default='', nullable=False),
        sa.Column('user_name', sa.String(length=200), server_default='', nullable=False),
        sa.Column('email', sa.String(length=254), server_default='', nullable=False),
        sa.Column('joined_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('matched_by', sa.String(length=12), server_default='', nullable=False),
        sa.ForeignKeyConstraint(['booking_id'], ['bookings.id']),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('meeting_id', 'session_key', name='uq_participant_sessions_key'),
    )
    op.create_index('ix_participant_sessions_meeting_id', 'participant_sessions', ['meeting_id'])
    op.create_index('ix_participant_sessions_booking_id', 'participant_sessions', ['booking_id'])


def downgrade():
    op.drop_index('ix_participant_sessions_booking_id', table_name='participant_sessions')
    op.drop_index('ix_participant_sessions_meeting_id', table_name='participant_sessions')
    op.drop_table('participant_sessions')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('bounce_reason')
        batch_op.drop_column('bounced_at')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        for column in ('attendance_by_host', 'attendance_estimated', 'attended_minutes', 'attendance',
                       'registrant_meeting_id', 'registrant_join_url', 'registrant_id'):
            batch_op.drop_column(column)
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('with_registrants')
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('per_guest_links')
        batch_op.drop_column('reminder_minutes')
        batch_op.drop_column('url_lead_hours')
