"""program_outputs: the last output of a failed program, sent with its status message

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-03 06:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('program_outputs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_uid', sa.String(length=120), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('deployment_id', sa.String(length=8), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('output', sa.Text(), nullable=False),
    sa.Column('received', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_uid')
    )
    op.create_index('ix_program_outputs_deployment_client', 'program_outputs',
                    ['deployment_id', 'client_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_program_outputs_deployment_client', table_name='program_outputs')
    op.drop_table('program_outputs')
