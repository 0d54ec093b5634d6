"""identity and access: accounts, tokens per account, audit log, site settings, client re-key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:27:58.709984

Existing API tokens (only `qm site init`'s admin token could exist) become tokens of a new
`admin` account; a token whose stored role was not admin is revoked rather than promoted.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_accounts = sa.table(
    "accounts", sa.column("id", sa.Integer()), sa.column("name", sa.String()),
    sa.column("role", sa.String()), sa.column("disabled", sa.Boolean()),
    sa.column("created", quartermaster.site.models.UTCDateTime(timezone=True)))
_tokens = sa.table(
    "api_tokens", sa.column("id", sa.Integer()), sa.column("account_id", sa.Integer()),
    sa.column("role", sa.String()), sa.column("revoked", sa.Boolean()))


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created', quartermaster.site.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('password_changed', quartermaster.site.models.UTCDateTime(timezone=True),
              nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', quartermaster.site.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('outcome', sa.String(length=30), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_account_time', ['account', 'time'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_time'), ['time'], unique=False)

    op.create_table('site_settings',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated', quartermaster.site.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_id', sa.Integer(), nullable=True))
    _tokens_to_admin_account()
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('account_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f('ix_api_tokens_account_id'), ['account_id'], unique=False)
        batch_op.create_foreign_key('fk_api_tokens_account_id_accounts', 'accounts',
                                    ['account_id'], ['id'])
        batch_op.drop_column('role')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rekey_required', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('next_secret_hash', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_clients_next_secret_hash', ['next_secret_hash'])


def _tokens_to_admin_account() -> None:
    bind = op.get_bind()
    if bind.execute(sa.select(sa.func.count()).select_from(_tokens)).scalar_one() == 0:
        return
    bind.execute(_accounts.insert().values(name="admin", role="admin", disabled=False,
                                           created=datetime.now(UTC)))
    admin_id = bind.execute(sa.select(_accounts.c.id)
                            .where(_accounts.c.name == "admin")).scalar_one()
    bind.execute(_tokens.update().values(account_id=admin_id))
    bind.execute(_tokens.update().where(_tokens.c.role != "admin").values(revoked=True))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_constraint('uq_clients_next_secret_hash', type_='unique')
        batch_op.drop_column('next_secret_hash')
        batch_op.drop_column('rekey_required')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), nullable=True))
    op.execute("UPDATE api_tokens SET role = (SELECT role FROM accounts "
               "WHERE accounts.id = api_tokens.account_id)")
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_constraint('fk_api_tokens_account_id_accounts', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_tokens_account_id'))
        batch_op.drop_column('account_id')

    op.drop_table('site_settings')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_time'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
        batch_op.drop_index('ix_audit_log_account_time')

    op.drop_table('audit_log')
    op.drop_table('accounts')
