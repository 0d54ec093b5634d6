"""release approvals and the hash-chained trust log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 06:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('release_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('package_hash', sa.String(length=64), nullable=False),
    sa.Column('package_id', sa.String(length=8), nullable=False),
    sa.Column('source_version', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.String(length=8), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('statement_digest', sa.String(length=64), nullable=False),
    sa.Column('keyid', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('created', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('statement_digest', 'keyid')
    )
    with op.batch_alter_table('release_approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_approvals_package_hash'),
                              ['package_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_release_approvals_package_id'),
                              ['package_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_release_approvals_app_id'), ['app_id'],
                              unique=False)

    op.create_table('trust_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('time', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('entry_hash')
    )
    with op.batch_alter_table('trust_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trust_log_kind'), ['kind'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trust_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trust_log_kind'))
    op.drop_table('trust_log')
    with op.batch_alter_table('release_approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_approvals_app_id'))
        batch_op.drop_index(batch_op.f('ix_release_approvals_package_id'))
        batch_op.drop_index(batch_op.f('ix_release_approvals_package_hash'))
    op.drop_table('release_approvals')
