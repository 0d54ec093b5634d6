"""packages: outside_links, what a snapshot does with links to what is not in the package

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outside_links", sa.String(length=10), nullable=False,
                      server_default="refuse")
        )


def downgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("outside_links")
