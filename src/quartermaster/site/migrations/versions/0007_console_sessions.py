"""console sessions kept as records (only each cookie's SHA-256), failed sign-ins counted
in the database; the console's cookie-signing key leaves site_settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 06:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('started', _TIME, nullable=False),
    sa.Column('expires', _TIME, nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_account_id'), ['account_id'],
                              unique=False)
    op.create_table('sign_in_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_failures_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_sign_in_failures_name_at', ['name', 'at'], unique=False)
    # The old key signed cookies that anyone who could read the database could forge.
    op.execute("DELETE FROM site_settings WHERE name = 'console.session_key'")


def downgrade() -> None:
    op.drop_table('sign_in_failures')
    op.drop_table('console_sessions')
