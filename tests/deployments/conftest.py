"""Fixtures for collections, schedules and rollouts: a real site database, no stand-ins.

Each test gets a fresh site home (`init_site` in tmp_path, SQLite) opened with
`SiteContext.open`, a published package with one program, and clients with fixed IDs (so a
client's rollout phase, a hash of the deployment and client IDs, is the same at every run).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quartermaster.core.program import ProgramSpec
from quartermaster.site.api.app import create_app
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.db import read_counter
from quartermaster.site.deployments import policy
from quartermaster.site.deployments.deployments import reevaluate_rollouts
from quartermaster.site.deployments.status_ingest import ingest
from quartermaster.site.models import Client, utcnow
from quartermaster.site.setup import init_site
from quartermaster.site.targeting import membership
from tests.e2e.site_templates import with_migrated_sqlite


# The site status messages deployments raise (IDs in site.deployments). Installed for the
# test only while core/status_catalog.py does not list them yet; once it does, these are
# left alone and the catalog's own entries are used.
@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[SiteContext]:
    init_site(with_migrated_sqlite(tmp_path / "site"), "QM1", "Test site")
    context = SiteContext.open(tmp_path / "site")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def package_id(ctx: SiteContext, tmp_path: Path) -> str:
    source = tmp_path / "source"
    source.mkdir()
    (source / "install.sh").write_text("exit 0\n")
    created = packages.create_package(
        ctx, "Demo", str(source), [ProgramSpec("Install", "sh install.sh")]
    )
    return str(created["package_id"])


@pytest.fixture
def api(ctx: SiteContext) -> Iterator[TestClient]:
    """The real FastAPI app over the same site, with the administrator's token."""
    token = ctx.home.admin_token_path.read_text().strip()
    with TestClient(create_app(ctx), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def client_id_for(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.example"))


def add_client(
    ctx: SiteContext,
    hostname: str,
    *,
    os: str = "linux",
    os_version: str = "6.1",
    architecture: str = "x86_64",
    ip_addresses: list[str] | None = None,
    agent_version: str = "0.1.0",
    properties: dict[str, Any] | None = None,
    approval: str = "approved",
) -> str:
    """A registered client with a fixed ID, evaluated as registration does."""
    client_id = client_id_for(hostname)
    with ctx.db.session() as session:
        session.add(
            Client(
                client_id=client_id,
                secret_hash=hashlib.sha256(client_id.encode()).hexdigest(),
                hostname=hostname,
                os=os,
                os_version=os_version,
                architecture=architecture,
                ip_addresses=ip_addresses if ip_addresses is not None else ["10.1.2.3"],
                agent_version=agent_version,
                properties=properties or {},
                approval=approval,
            )
        )
        session.flush()
        membership.client_changed(session, client_id)
    return client_id


def members(ctx: SiteContext, collection: str) -> dict[str, str]:
    """{hostname: reason} of a collection's evaluated members."""
    with ctx.db.session() as session:
        shown = membership.show_collection(session, collection)
    return {m["hostname"]: m["reason"] for m in shown["members"]}


def policy_of(ctx: SiteContext, client_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The signed part of the client's policy, as the policy route builds it."""
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        envelope = policy.build_policy(ctx, session, client, now or utcnow())
    signed: dict[str, Any] = envelope["signed"]
    return signed


def deployments_of(ctx: SiteContext, client_id: str) -> dict[str, dict[str, Any]]:
    return {d["deployment_id"]: d for d in policy_of(ctx, client_id)["deployments"]}


def serial(ctx: SiteContext) -> int:
    """The policy serial: the ETag of every client's policy follows it."""
    with ctx.db.session() as session:
        return read_counter(session, policy.SERIAL)


_seconds = itertools.count(1)


def report(ctx: SiteContext, client_id: str, deployment_id: str, message_id: int) -> None:
    """One status message from the client (10008 succeeded, 10006 failed), ingested and
    rolled up, then the rollout hook run as status ingest runs it."""
    exit_code = 0 if message_id == 10008 else 1
    sent = datetime(2026, 11, 25, 12, 0, tzinfo=UTC) + timedelta(seconds=next(_seconds))
    message = {
        "uid": uuid.uuid4().hex,
        "message_id": message_id,
        "time": sent.isoformat().replace("+00:00", "Z"),
        "deployment_id": deployment_id,
        "package_id": "QM100001",
        "dp": "",
        "insertion_strings": [deployment_id, "QM100001", "Install", str(exit_code)],
        "properties": {"exit_code": exit_code, "source_version": 1},
    }
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        assert ingest(session, client, [message]) == {"accepted": 1, "duplicates": 0}
        reevaluate_rollouts(session, [deployment_id])
