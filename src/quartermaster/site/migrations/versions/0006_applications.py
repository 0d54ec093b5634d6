"""applications: revisions, dependency and supersedence links, deployments of applications

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

import quartermaster.site.models

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_TIME = quartermaster.site.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('applications',
    sa.Column('app_id', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('current_revision', sa.Integer(), nullable=False),
    sa.Column('created', _TIME, nullable=False),
    sa.Column('updated', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('app_id')
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_applications_name'), ['name'], unique=False)

    op.create_table('application_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.String(length=8), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('package_id', sa.String(length=8), nullable=False),
    sa.Column('source_version', sa.Integer(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created', _TIME, nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['applications.app_id'], ),
    sa.ForeignKeyConstraint(['package_id'], ['packages.package_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('app_id', 'revision')
    )
    with op.batch_alter_table('application_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_revisions_app_id'), ['app_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_application_revisions_package_id'),
                              ['package_id'], unique=False)

    op.create_table('application_links',
    sa.Column('revision_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('other_app_id', sa.String(length=8), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['other_app_id'], ['applications.app_id'], ),
    sa.ForeignKeyConstraint(['revision_id'], ['application_revisions.id'], ),
    sa.PrimaryKeyConstraint('revision_id', 'kind', 'other_app_id')
    )
    with op.batch_alter_table('application_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_links_other_app_id'),
                              ['other_app_id'], unique=False)

    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('app_id', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), nullable=True))
        batch_op.alter_column('package_id', existing_type=sa.String(length=8), nullable=True)
        batch_op.create_index(batch_op.f('ix_deployments_app_id'), ['app_id'], unique=False)
        batch_op.create_foreign_key('fk_deployments_app_id_applications', 'applications',
                                    ['app_id'], ['app_id'])

    with op.batch_alter_table('deployment_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_evaluated', _TIME, nullable=True))
        batch_op.add_column(sa.Column('evidence', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deployment_clients', schema=None) as batch_op:
        batch_op.drop_column('evidence')
        batch_op.drop_column('last_evaluated')
    op.execute("DELETE FROM deployment_clients WHERE deployment_id IN "
               "(SELECT deployment_id FROM deployments WHERE app_id IS NOT NULL)")
    op.execute("DELETE FROM deployments WHERE app_id IS NOT NULL")
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_constraint('fk_deployments_app_id_applications', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_deployments_app_id'))
        batch_op.alter_column('package_id', existing_type=sa.String(length=8), nullable=False)
        batch_op.drop_column('purpose')
        batch_op.drop_column('app_id')
    op.drop_table('application_links')
    op.drop_table('application_revisions')
    op.drop_table('applications')
