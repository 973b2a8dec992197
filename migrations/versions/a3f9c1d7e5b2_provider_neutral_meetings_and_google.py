"""provider-neutral meetings, Google links, and a service's choice of video tool

``zoom_meetings`` becomes ``meetings``: every row is carried over with ``provider = 'zoom'`` and
its Zoom meeting id as text in ``external_id`` (a Google event id is text); ``host_url`` is new.
``google_connections`` holds hosts' Google links. ``services.meeting_url`` is a host's own
fixed URL (``venue = 'fixed_url'``).

Revision ID: a3f9c1d7e5b2
Revises: d8f3b6a1c2e9
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3f9c1d7e5b2'
down_revision = 'd8f3b6a1c2e9'
branch_labels = None
depends_on = None

_COMMON = ('id', 'slot_id', 'host_id', 'status', 'join_url', 'password', 'topic', 'issue_key', 'attempts',
           'preflight_at', 'legacy', 'issued_at', 'deleted_at', 'failure', 'last_error', 'created_at')


#: ``MeetingFailure`` members lost their Zoom prefix (the column holds member names).
_RENAMED = {'ZOOM_UNAVAILABLE': 'UNAVAILABLE', 'ZOOM_REFUSED': 'REFUSED'}


def _select(renamed: dict) -> str:
    cases = ' '.join(f"WHEN '{old}' THEN '{new}'" for old, new in renamed.items())
    return ', '.join(f"CASE failure {cases} ELSE failure END" if c == 'failure' else c for c in _COMMON)


def _meeting_columns(id_column: sa.Column) -> list:
    return [
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('slot_id', sa.Integer(), nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('ISSUING', 'ISSUED', 'DELETED', 'FAILED', 'DELETE_FAILED', name='meetingstatus',
                                    native_enum=False, length=20), nullable=False),
        id_column,
        sa.Column('join_url', sa.Text(), nullable=False),
        sa.Column('password', sa.String(length=20), nullable=False),
        sa.Column('topic', sa.String(length=200), nullable=False),
        sa.Column('issue_key', sa.String(length=32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('preflight_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('legacy', sa.Boolean(), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failure', sa.Enum('LINK_BROKEN', 'DAILY_LIMIT', 'UNAVAILABLE', 'REFUSED', 'IN_PROGRESS',
                                     name='meetingfailure', native_enum=False, length=20), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['users.id']),
        sa.ForeignKeyConstraint(['slot_id'], ['slots.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('slot_id'),
    ]


def _reset_sequence(table: str) -> None:
    if op.get_bind().dialect.name == 'postgresql':  # rows were copied with their ids
        op.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                   f"FROM {table}")


def upgrade():
    op.create_table('meetings', *_meeting_columns(sa.Column('external_id', sa.String(length=1024), nullable=True)),
                    sa.Column('provider', sa.String(length=20), server_default='zoom', nullable=False),
                    sa.Column('host_url', sa.Text(), server_default='', nullable=False))
    op.create_index('ix_meetings_host_id', 'meetings', ['host_id'])
    op.create_index('ix_meetings_external_id', 'meetings', ['external_id'])
    op.execute(f"INSERT INTO meetings ({', '.join(_COMMON)}, external_id, provider) "
               f"SELECT {_select(_RENAMED)}, CAST(zoom_meeting_id AS VARCHAR(1024)), 'zoom' FROM zoom_meetings")
    _reset_sequence('meetings')
    op.drop_table('zoom_meetings')

    op.create_table(
        'google_connections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('ACTIVE', 'NEEDS_RELINK', 'OFF', name='linkstatus', native_enum=False, length=20),
                  nullable=False),
        sa.Column('broken_reason', sa.String(length=300), nullable=False),
        sa.Column('access_token_enc', sa.Text(), nullable=False),
        sa.Column('refresh_token_enc', sa.Text(), nullable=False),
        sa.Column('access_expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('scope', sa.String(length=500), nullable=False),
        sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('applies_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('google_subject', sa.String(length=255), nullable=False),
        sa.Column('google_email', sa.String(length=254), nullable=False),
        sa.Column('hosted_domain', sa.String(length=253), server_default='', nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('host_id'),
        sa.UniqueConstraint('google_subject'),
    )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meeting_url', sa.String(length=500), server_default='', nullable=False))
    _rename_kinds(_KINDS)


#: Email kinds about a slot's meeting lost their Zoom prefix; their dedupe keys start with the kind.
_KINDS = {'zoom_url': 'meeting_url', 'zoom_url_waiting': 'meeting_url_waiting',
          'zoom_host_notice': 'meeting_host_notice', 'zoom_trouble': 'meeting_trouble',
          'zoom_delete_failed': 'meeting_delete_failed'}


def _rename_kinds(kinds: dict) -> None:
    for old, new in kinds.items():
        op.execute(sa.text("UPDATE deliveries SET kind = :new WHERE kind = :old").bindparams(old=old, new=new))
        op.execute(sa.text("UPDATE deliveries SET dedupe_key = :new || substr(dedupe_key, :rest) "
                           "WHERE substr(dedupe_key, 1, :length) = :old")
                   .bindparams(old=f"{old}:", new=f"{new}:", rest=len(old) + 2, length=len(old) + 1))


def downgrade():
    _rename_kinds({new: old for old, new in _KINDS.items()})
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_column('meeting_url')
    op.drop_table('google_connections')
    op.create_table('zoom_meetings', *_meeting_columns(sa.Column('zoom_meeting_id', sa.BigInteger(), nullable=True)))
    op.create_index('ix_zoom_meetings_host_id', 'zoom_meetings', ['host_id'])
    op.create_index('ix_zoom_meetings_zoom_meeting_id', 'zoom_meetings', ['zoom_meeting_id'])
    op.execute(f"INSERT INTO zoom_meetings ({', '.join(_COMMON)}, zoom_meeting_id) "
               f"SELECT {_select({new: old for old, new in _RENAMED.items()})}, CAST(external_id AS BIGINT) "
               f"FROM meetings WHERE provider = 'zoom'")
    _reset_sequence('zoom_meetings')
    op.drop_table('meetings')
