"""clients: poll_requested, set by `qm client notify` and cleared when the client fetches policy

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 03:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("poll_requested", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("poll_requested")
