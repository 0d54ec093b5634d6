"""packages: keep_versions (retention); pruned_versions, versions removed by retention

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-03 06:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("packages", sa.Column("keep_versions", sa.Integer(), nullable=True))
    op.create_table('pruned_versions',
    sa.Column('package_hash', sa.String(length=64), nullable=False),
    sa.Column('package_id', sa.String(length=8), nullable=False),
    sa.Column('source_version', sa.Integer(), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('pruned', _TIME, nullable=False),
    sa.ForeignKeyConstraint(['package_id'], ['packages.package_id'], ),
    sa.PrimaryKeyConstraint('package_hash')
    )
    with op.batch_alter_table('pruned_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pruned_versions_package_id'), ['package_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_pruned_versions_pruned'), ['pruned'], unique=False)


def downgrade() -> None:
    op.drop_table('pruned_versions')
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("keep_versions")
