"""Migration 0002 on both engines, and the same membership and rollout on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text

from quartermaster.core.program import ProgramSpec
from quartermaster.site import db
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import create_deployment, deployment_status
from quartermaster.site.deployments.phases import parse_phases
from quartermaster.site.setup import init_site
from quartermaster.site.targeting import membership
from tests.conftest import ENGINES, fresh_postgres_database
from tests.deployments.conftest import (
    add_client,
    client_id_for,
    deployments_of,
    members,
    report,
)

DEPLOYMENT = "QM120000"


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield db.sqlite_url(tmp_path / "site.db")
        return
    with fresh_postgres_database() as url:
        yield url


def test_members_added_before_rules_become_direct_members(database: str) -> None:
    config = db.alembic_config(database)
    command.upgrade(config, "0001")
    engine: Engine = db.make_engine(database)
    client_id = client_id_for("lab-01")
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO clients (client_id, secret_hash, hostname, os, os_version, "
                    "architecture, ip_addresses, agent_version, properties, approval, registered) "
                    "VALUES (:c, 'h', 'lab-01', 'linux', '', '', '[]', '', '{}', 'approved', "
                    "CURRENT_TIMESTAMP)"
                ),
                {"c": client_id},
            )
            conn.execute(
                text(
                    "INSERT INTO collections (name, comment, created) "
                    "VALUES ('Lab', '', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO collection_members (collection_id, client_id, "
                    "reason) SELECT id, :c, 'direct member' FROM collections"
                ),
                {"c": client_id},
            )
        command.upgrade(config, "0002")
        with engine.begin() as conn:
            direct = conn.execute(text("SELECT client_id FROM collection_direct")).all()
            reasons = conn.execute(text("SELECT reason FROM collection_members")).all()
        assert [tuple(r) for r in direct] == [(client_id,)]
        assert [tuple(r) for r in reasons] == [("direct",)]
        command.downgrade(config, "0001")
        command.upgrade(config, "head")
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_membership_and_rollout_on_postgresql(tmp_path: Path, package_id_source: Path) -> None:
    with fresh_postgres_database() as url:
        init_site(tmp_path / "site", "QM1", "Test site", database_url=url)
        ctx = SiteContext.open(tmp_path / "site")
        try:
            _scenario(ctx, package_id_source)
        finally:
            ctx.close()


@pytest.fixture
def package_id_source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "install.sh").write_text("exit 0\n")
    return source


def _scenario(ctx: SiteContext, source: Path) -> None:
    package_id = packages.create_package(
        ctx, "Demo", str(source), [ProgramSpec("Install", "sh install.sh")]
    )["package_id"]
    ids = [add_client(ctx, f"pc-{i:02d}") for i in range(20)]
    with ctx.db.session() as session:
        membership.create_collection(session, "Arm", rules=['arch = "arm64"'])
        membership.create_collection(
            session,
            "Fleet",
            rules=['hostname like "pc-%"'],
            exclude=["Arm"],
            windows=["Sat 22:00-02:00 UTC"],
        )
        create_deployment(
            session, "QM1", package_id, "Install", "Fleet", plan=parse_phases("20%,50%,100%", 95, 5)
        )
    assert len(members(ctx, "Fleet")) == 20
    with ctx.db.session() as session:
        status = deployment_status(session, DEPLOYMENT)
    first = [c["client_id"] for c in status["clients"] if c["phase"] == 1]
    assert len(first) == 5
    for client_id in first:
        report(ctx, client_id, DEPLOYMENT, 10008)
    with ctx.db.session() as session:
        assert deployment_status(session, DEPLOYMENT)["rollout"]["released"] == 2
    second = next(c for c in ids if c not in first and DEPLOYMENT in deployments_of(ctx, c))
    assert deployments_of(ctx, second)[DEPLOYMENT]["maintenance_windows"] == ["Sat 22:00-02:00 UTC"]
    report(ctx, second, DEPLOYMENT, 10006)
    assert deployments_of(ctx, second)[DEPLOYMENT]["state"] == "paused"
