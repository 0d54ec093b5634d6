"""peer cache: peers, what they hold, and the one elected fetcher per boundary and version

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 10:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('peers',
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('url', sa.String(length=100), nullable=False),
    sa.Column('boundary', sa.String(length=50), nullable=False),
    sa.Column('serving', sa.Boolean(), nullable=False),
    sa.Column('suspended', sa.Boolean(), nullable=False),
    sa.Column('reported', _TIME, nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], ),
    sa.PrimaryKeyConstraint('client_id')
    )
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_peers_boundary'), ['boundary'], unique=False)
    op.create_table('peer_holdings',
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('package_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['peers.client_id'], ),
    sa.PrimaryKeyConstraint('client_id', 'package_hash')
    )
    with op.batch_alter_table('peer_holdings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_peer_holdings_package_hash'), ['package_hash'],
                              unique=False)
    op.create_table('peer_fetch_leases',
    sa.Column('boundary', sa.String(length=50), nullable=False),
    sa.Column('package_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('expires', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('boundary', 'package_hash')
    )


def downgrade() -> None:
    op.drop_table('peer_fetch_leases')
    with op.batch_alter_table('peer_holdings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_peer_holdings_package_hash'))
    op.drop_table('peer_holdings')
    with op.batch_alter_table('peers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_peers_boundary'))
    op.drop_table('peers')
