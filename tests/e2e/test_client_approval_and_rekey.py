"""A client waiting for approval keeps its status, and a re-keyed client switches secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import create_package, deploy_to, make_source, register_client, run_client

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def test_unapproved_client_waits_then_installs_once_approved(
    site: SiteServer, tmp_path: Path
) -> None:
    site.qm("site", "settings", "--require-approval", "true")
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "approved\n"))
    client = tmp_path / "client"
    client_id = register_client(site, client)

    waiting = run_qm("client", "run", "--home", str(client), "--once")

    assert "waiting" in waiting.stdout
    assert not target.exists()
    site.qm("client", "approve", client_id)
    deploy_to(site, package_id, [client_id], "Lab")
    run_client(client)
    assert target.read_text() == "approved\n"


def test_rekeyed_client_stores_its_new_secret_and_keeps_working(
    site: SiteServer, tmp_path: Path
) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "rekeyed\n"))
    client = tmp_path / "client"
    client_id = register_client(site, client)
    secrets = [p for p in client.iterdir() if "secret" in p.name]
    assert len(secrets) == 1
    old_secret = secrets[0].read_text()

    site.qm("client", "rekey", client_id)
    deploy_to(site, package_id, [client_id], "Lab")
    run_client(client)

    assert target.read_text() == "rekeyed\n"
    new_secret = secrets[0].read_text()
    assert new_secret != old_secret and new_secret.startswith("qmc_")
    run_client(client)  # the new secret is the one the site accepts now
