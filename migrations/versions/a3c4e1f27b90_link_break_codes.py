"""link break codes

Why a Zoom link needs relinking becomes a code (``grant_lost``, ``taken_over``) translated when
shown, instead of a Japanese sentence; the two sentences stored so far become their codes.

Revision ID: a3c4e1f27b90
Revises: 5d1e8f0a7c3b
Create Date: 2026-11-25 18:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3c4e1f27b90'
down_revision = '5d1e8f0a7c3b'
branch_labels = None
depends_on = None

SENTENCES = {
    "grant_lost": "Zoomとの連携が切れました（認可の有効期限切れ、またはZoom側で取り消されました）。",
    "taken_over": "同じZoomアカウントが別のホストアカウントで連携されたため、連携が解除されました。",
}
connections = sa.table("zoom_connections", sa.column("broken_reason", sa.String))


def upgrade():
    for code, sentence in SENTENCES.items():
        op.execute(connections.update().where(connections.c.broken_reason == sentence).values(broken_reason=code))


def downgrade():
    for code, sentence in SENTENCES.items():
        op.execute(connections.update().where(connections.c.broken_reason == code).values(broken_reason=sentence))
