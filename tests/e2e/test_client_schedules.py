"""Schedules as a real client process lives them: available-only, maintenance windows,
expiry, rerun after a failure, and membership by a custom property the client reports.

The times are real (the site's and the client's clocks); each case is placed far enough
from now (hours or days) that neither the clock tolerance nor a slow machine changes the
answer. The same rules with an injected clock are in tests/rules and tests/client.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deployment_status,
    make_source,
    message_ids,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deploy(site: SiteServer, package_id: str, collection: str, *options: str) -> str:
    return site.qm(
        "deploy",
        "create",
        "--package",
        package_id,
        "--program",
        "Install",
        "--collection",
        collection,
        *options,
    ).stdout.strip()


def _client_in(site: SiteServer, home: Path, collection: str, *options: str) -> str:
    client_id = register_client(site, home)
    site.qm("collection", "create", collection, *options)
    site.qm("collection", "add", collection, client_id)
    return client_id


def _client_state(home: Path, deployment_id: str) -> dict[str, Any]:
    status = run_qm("client", "status", "--home", str(home), "--json").json()
    return next(d for d in status["deployments"] if d["deployment_id"] == deployment_id)


def test_available_only_runs_when_asked_and_not_by_itself(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "asked\n"))
    client = tmp_path / "client"
    client_id = _client_in(site, client, "Lab")
    deployment_id = _deploy(site, package_id, "Lab", "--available", "now", "--deadline", "+2d")

    run_client(client)
    run_client(client)
    assert not target.exists()
    assert message_ids(site, client=client_id).count(10003) == 1  # announced once, not run
    state = _client_state(client, deployment_id)
    assert state["result"] == "not run"
    assert state["next"]["action"] == "available" and state["next"]["at"]  # until the deadline

    out = run_qm("client", "run", "--home", str(client), "--install", deployment_id)
    assert target.read_text() == "asked\n"
    assert f"{deployment_id}: ran: succeeded" in out.stdout
    assert deployment_status(site, deployment_id)["counts"].get("succeeded") == 1


def test_a_mandatory_run_waits_for_the_maintenance_window(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "in window\n"))
    now = datetime.now(UTC)
    # A window that opens on a whole minute, shown as such ("T10:27Z"): a start with seconds
    # is shown with them, so a start taken from the clock would be shown either way.
    opens_at = (now + timedelta(days=2)).replace(second=0, microsecond=0)
    later = f"{_iso(opens_at)}/{_iso(opens_at + timedelta(hours=2))}"
    client = tmp_path / "client"
    client_id = _client_in(site, client, "Servers", "--window", later)
    deployment_id = _deploy(site, package_id, "Servers")  # mandatory now

    run_client(client)
    assert not target.exists()
    held = [m for m in _messages(site, client_id) if m["message_id"] == 10060]
    assert len(held) == 1 and _iso(opens_at)[:16] in " ".join(held[0]["insertion_strings"])
    assert 10005 not in message_ids(site, client=client_id)
    waiting = _client_state(client, deployment_id)["next"]
    assert waiting["action"] == "wait_window"
    assert waiting["at"][:10] == _iso(opens_at)[:10]
    # Both sides say why it is in progress, and when the window opens.
    opens = opens_at.strftime("%Y-%m-%dT%H:%MZ")
    said = f"waiting for a maintenance window (opens {opens}"
    assert f"    next: {said}" in run_qm("client", "status", "--home", str(client)).stdout
    status = deployment_status(site, deployment_id)
    assert status["counts"]["in_progress"] == 1
    assert status["waiting_for_window"] == {"clients": 1, "opens": opens}
    [row] = status["clients"]
    assert row["waiting"] == f"{said})"
    shown = " ".join(site.qm("deploy", "status", deployment_id).stdout.split())
    assert f"1 in progress {said})" in shown, shown

    open_now = f"{_iso(now - timedelta(hours=1))}/{_iso(now + timedelta(hours=6))}"
    site.qm("collection", "window", "add", "Servers", open_now)
    run_client(client)
    assert target.read_text() == "in window\n"
    assert deployment_status(site, deployment_id)["counts"].get("succeeded") == 1


def test_an_override_deployment_ignores_the_window(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "override\n"))
    now = datetime.now(UTC)
    later = f"{_iso(now + timedelta(days=2))}/{_iso(now + timedelta(days=2, hours=2))}"
    client = tmp_path / "client"
    _client_in(site, client, "Servers", "--window", later)
    _deploy(site, package_id, "Servers", "--override-maintenance")
    run_client(client)
    assert target.read_text() == "override\n"


def test_an_expired_deployment_never_runs(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "late\n"))
    now = datetime.now(UTC)
    client = tmp_path / "client"
    client_id = _client_in(site, client, "Lab")
    deployment_id = _deploy(
        site,
        package_id,
        "Lab",
        "--available",
        _iso(now - timedelta(hours=3)),
        "--deadline",
        _iso(now - timedelta(hours=2)),
        "--expires",
        _iso(now - timedelta(hours=1)),
    )
    run_client(client)
    run_client(client)
    refused = run_qm("client", "run", "--home", str(client), "--install", deployment_id)
    assert not target.exists()
    assert message_ids(site, client=client_id).count(10057) == 1
    assert "expired" in refused.stdout


def test_a_failure_is_not_retried_at_every_run_but_on_request_or_a_new_version(
    site: SiteServer, tmp_path: Path
) -> None:
    """if-failed: a failed attempt waits for a new deadline (tests/client, with an injected
    clock), a user's request, or a new source version."""
    counter = tmp_path / "attempts"
    source = tmp_path / "src"
    source.mkdir()
    (source / "install.sh").write_text(f"echo v1 >> '{counter}'\nexit 1\n")
    package_id = create_package(site, source)
    client = tmp_path / "client"
    client_id = _client_in(site, client, "Lab")
    deployment_id = _deploy(site, package_id, "Lab", "--rerun", "if-failed")

    run_client(client)
    run_client(client)  # not retried at every agent run
    assert counter.read_text().split() == ["v1"]
    assert message_ids(site, client=client_id).count(10006) == 1

    site.qm("deploy", "reschedule", deployment_id, "--deadline", "+1d")
    run_client(client)  # a deadline in the future: available until then, not run
    assert counter.read_text().split() == ["v1"]
    assert _client_state(client, deployment_id)["deadline"] is not None

    run_qm("client", "run", "--home", str(client), "--install", deployment_id)  # a user asks
    assert counter.read_text().split() == ["v1", "v1"]

    (source / "install.sh").write_text(f"echo v2 >> '{counter}'\nexit 0\n")
    site.qm("package", "update", package_id)
    wait_installed(site, package_id, version=2)
    site.qm("deploy", "reschedule", deployment_id, "--deadline", "now")
    run_client(client)  # a new source version reaches a client that has not succeeded
    run_client(client)
    assert counter.read_text().split() == ["v1", "v1", "v2"]
    assert deployment_status(site, deployment_id)["counts"].get("succeeded") == 1


def test_a_custom_property_the_client_reports_brings_it_into_a_rule_collection(
    site: SiteServer, tmp_path: Path
) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "by rule\n"))
    client = tmp_path / "client"
    client_id = register_client(site, client)
    site.qm("collection", "create", "Lab machines", "--rule", 'prop.department = "lab"')
    _deploy(site, package_id, "Lab machines")
    run_client(client)
    assert not target.exists()

    bad = run_qm("client", "properties", "--home", str(client), "--set", "no value", check=False)
    assert bad.code != 0 and "NAME=VALUE" in bad.stderr
    run_qm("client", "properties", "--home", str(client), "--set", "department=lab")
    run_client(client)  # reports its facts, joins the collection, gets the deployment
    assert target.read_text() == "by rule\n"
    members = site.qm("collection", "show", "Lab machines", "--json").json()["members"]
    assert [(m["client_id"], m["reason"]) for m in members] == [
        (client_id, "rule: prop.department = lab")
    ]


def _messages(site: SiteServer, client_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = site.qm(
        "status", "messages", "--client", client_id, "--limit", "1000", "--json"
    ).json()["messages"]
    return rows
