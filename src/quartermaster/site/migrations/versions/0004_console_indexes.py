"""the web console: status message indexes per viewer filter, DP disk use

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:00:00.000000

The status message viewer filters on severity, package, DP and component and sorts by time,
so each filter gets an index on (column, time); the single-column severity and package
indexes become redundant and are dropped. DPs already report their free and used bytes;
the site now keeps them for the console. The overview counts active clients from an index
on (approval, last policy request).
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_NEW_INDEXES = {
    "ix_status_messages_severity_time": ["severity", "time"],
    "ix_status_messages_package_time": ["package_id", "time"],
    "ix_status_messages_dp_time": ["dp_name", "time"],
    "ix_status_messages_component_time": ["component", "time"],
}


def upgrade() -> None:
    for name, columns in _NEW_INDEXES.items():
        op.create_index(name, "status_messages", columns, unique=False)
    op.drop_index("ix_status_messages_severity", table_name="status_messages")
    op.drop_index("ix_status_messages_package_id", table_name="status_messages")
    op.create_index("ix_clients_approval_policy", "clients", ["approval", "last_policy_request"],
                    unique=False)
    op.add_column("distribution_points", sa.Column("free_bytes", sa.BigInteger(), nullable=True))
    op.add_column("distribution_points", sa.Column("used_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("distribution_points", schema=None) as batch_op:
        batch_op.drop_column("used_bytes")
        batch_op.drop_column("free_bytes")
    op.drop_index("ix_clients_approval_policy", table_name="clients")
    op.create_index("ix_status_messages_package_id", "status_messages", ["package_id"],
                    unique=False)
    op.create_index("ix_status_messages_severity", "status_messages", ["severity"], unique=False)
    for name in _NEW_INDEXES:
        op.drop_index(name, table_name="status_messages")
