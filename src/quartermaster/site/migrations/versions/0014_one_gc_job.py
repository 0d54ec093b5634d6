"""jobs: at most one garbage collection queued or running per target

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 10:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_OPEN_GC = sa.text("kind = 'gc' AND state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index('ux_jobs_one_open_gc', 'jobs', ['kind', 'target'], unique=True,
                    sqlite_where=_OPEN_GC, postgresql_where=_OPEN_GC)


def downgrade() -> None:
    op.drop_index('ux_jobs_one_open_gc', table_name='jobs')
