"""Applications on the site: revisions, refused rules and cycles, policy, compliance, phases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from quartermaster.core.program import ProgramSpec
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.status_ingest import ingest
from tests.deployments.conftest import add_client, deployments_of, policy_of


def _app(api: TestClient, package_id: str, name: str = "Tool", **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "package_id": package_id,
        "install": "Install",
        "detect": ["dpkg:qm-test-tool>=1.0"],
        **extra,
    }
    answer = api.post("/api/v1/applications", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_every_bad_rule_is_refused_at_create_with_its_column(
    api: TestClient, package_id: str
) -> None:
    answer = api.post(
        "/api/v1/applications",
        json={
            "name": "Bad",
            "package_id": package_id,
            "install": "Install",
            "detect": ["file:/ok", "dpkg:tool=>1.0"],
        },
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["message"].startswith("detection rule 'dpkg:tool=>1.0', column 10:")
    assert "docs/applications.md" in error["hint"] or ">=" in error["message"]
    assert api.get("/api/v1/applications").json()["applications"] == []  # nothing was made


def test_revisions_are_immutable_and_the_newest_is_in_force(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    created = _app(api, package_id, uninstall=None, run_as="user:alice")
    app_id = created["app_id"]
    assert created["revisions"][0]["run_as"] == "user:alice"

    revised = api.post(
        f"/api/v1/applications/{app_id}/revisions",
        json={
            "package_id": package_id,
            "install": "Install",
            "detect": ["file:/opt/tool"],
            "detect_any": True,
        },
    ).json()
    assert revised["current_revision"] == 2
    first, second = revised["revisions"]
    assert first["detection"] == {"combine": "all", "rules": ["dpkg:qm-test-tool>=1.0"]}
    assert second["detection"] == {"combine": "any", "rules": ["file:/opt/tool"]}


def test_cycles_are_refused_naming_the_cycle(api: TestClient, package_id: str) -> None:
    a = _app(api, package_id, "A")["app_id"]
    b = _app(api, package_id, "B", depends=[a])["app_id"]
    c = _app(api, package_id, "C", supersedes=[f"{b}=uninstall"])["app_id"]
    answer = api.post(
        f"/api/v1/applications/{a}/revisions",
        json={
            "package_id": package_id,
            "install": "Install",
            "detect": ["file:/x"],
            "depends": [c],
        },
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["message"] == (
        f"this would make a cycle: {a} depends on {c} supersedes {b} depends on {a}"
    )
    itself = api.post(
        f"/api/v1/applications/{a}/revisions",
        json={
            "package_id": package_id,
            "install": "Install",
            "detect": ["file:/x"],
            "supersedes": [a],
        },
    )
    assert itself.status_code == 409 and f"{a} → {a}" in itself.json()["error"]["message"]
    assert api.get(f"/api/v1/applications/{a}").json()["current_revision"] == 1


def test_policy_carries_the_application_and_everything_it_needs(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    packages.add_program(ctx, package_id, ProgramSpec("Remove", "sh remove.sh"))
    lib = _app(api, package_id, "Lib")["app_id"]
    old = _app(api, package_id, "Old", uninstall="Remove")["app_id"]
    tool = _app(api, package_id, "Tool", depends=[lib], supersedes=[f"{old}=uninstall"])["app_id"]
    client = add_client(ctx, "pc-1")
    api.post("/api/v1/collections", json={"name": "Lab"})
    api.post("/api/v1/collections/Lab/members", json={"client_id": client})
    created = api.post(
        "/api/v1/application-deployments",
        json={"app_id": tool, "collection": "Lab", "purpose": "install"},
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["deployment_id"]
    entry = deployments_of(ctx, client)[deployment_id]
    assert entry["application"] == {"app_id": tool, "purpose": "install"}
    applications = policy_of(ctx, client)["applications"]
    assert set(applications) == {tool, lib, old}
    assert applications[tool]["depends"] == [lib]
    assert applications[tool]["supersedes"] == [{"app_id": old, "mode": "uninstall"}]
    refused = api.post(
        "/api/v1/application-deployments",
        json={"app_id": lib, "collection": "Lab", "purpose": "uninstall"},
    )
    assert refused.status_code == 422 and "no uninstall program" in refused.text


def _message(deployment_id: str, message_id: int, **properties: Any) -> dict[str, Any]:
    sent = datetime(2026, 11, 25, 12, 0, tzinfo=UTC) + timedelta(seconds=message_id % 97)
    return {
        "uid": uuid.uuid4().hex,
        "message_id": message_id,
        "time": sent.isoformat().replace("+00:00", "Z"),
        "deployment_id": deployment_id,
        "package_id": "QM100001",
        "insertion_strings": [deployment_id, "QM100001", "Install", "app", "0", "x"],
        "properties": {"source_version": 1, **properties},
    }


def test_phases_advance_on_compliance_not_exit_codes(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    app_id = _app(api, package_id)["app_id"]
    clients = [add_client(ctx, f"pc-{n}") for n in range(12)]
    api.post("/api/v1/collections", json={"name": "Fleet"})
    api.post("/api/v1/collections/Fleet/members", json={"client_ids": clients})
    deployment = api.post(
        "/api/v1/application-deployments",
        json={
            "app_id": app_id,
            "collection": "Fleet",
            "phases": "50%,100%",
            "success_threshold": 100,
            "error_threshold": 100,
        },
    ).json()
    deployment_id = deployment["deployment_id"]
    first = [
        c["client_id"]
        for c in api.get(f"/api/v1/deployments/{deployment_id}/status").json()["clients"]
        if c["phase"] == 1
    ]
    assert first
    evidence = [{"rule": "dpkg:qm-test-tool>=1.0", "result": "absent", "saw": "not installed"}]
    with ctx.db.session() as session:
        for client in first:  # every install program exited 0 ...
            ingest(session, client, [_message(deployment_id, 10008, exit_code=0)])
    status = api.get(f"/api/v1/deployments/{deployment_id}/status").json()
    assert status["rollout"]["released"] == 1  # ... but that is not compliance
    with ctx.db.session() as session:
        for client in first:  # detection: installed (or already compliant)
            ingest(
                session, client, [_message(deployment_id, 1000, detected=True, evidence=evidence)]
            )
    status = api.get(f"/api/v1/deployments/{deployment_id}/status").json()
    assert status["rollout"]["released"] == 2
    assert status["compliance"]["installed"] == len(first)
    assert status["compliance"]["compliant"] == len(first)
    row = next(c for c in status["clients"] if c["client_id"] == first[0])
    assert row["state"] == "installed" and row["evidence"] == evidence
    assert row["last_evaluated"] is not None
    by_app = api.get(f"/api/v1/applications/{app_id}/status").json()
    assert by_app["counts"]["installed"] == len(first)
    assert by_app["counts"]["unknown"] == len(clients) - len(first)


def test_a_program_run_context_must_name_its_account(api: TestClient, package_id: str) -> None:
    body = {"name": "AsUser", "command": "sh install.sh", "run_context": "user"}
    refused = api.post(f"/api/v1/packages/{package_id}/programs", json=body)
    assert refused.status_code == 422 and "user:NAME" in refused.json()["error"]["hint"]
    body["run_context"] = "user:alice"
    assert api.post(f"/api/v1/packages/{package_id}/programs", json=body).status_code == 201


def test_a_requirement_rule_is_checked_at_create_and_decided_per_client_in_policy(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    bad = api.post(
        "/api/v1/applications",
        json={
            "name": "Tool",
            "package_id": package_id,
            "install": "Install",
            "detect": ["dpkg:qm-test-tool"],
            "require": "os_version >= ",
        },
    )
    assert bad.status_code == 422 and "column" in bad.json()["error"]["message"]
    app = _app(api, package_id, require='os_version >= 12 and prop.dept = "lab"')["app_id"]
    shown = api.get(f"/api/v1/applications/{app}").json()
    assert shown["revisions"][-1]["require"] == 'os_version >= 12 and prop.dept = "lab"'
    fits = add_client(ctx, "pc-new", os_version="12.4", properties={"dept": "lab"})
    old = add_client(ctx, "pc-old", os_version="11", properties={"dept": "lab"})
    api.post("/api/v1/collections", json={"name": "Lab"})
    api.post("/api/v1/collections/Lab/members", json={"client_ids": [fits, old]})
    created = api.post(
        "/api/v1/application-deployments",
        json={"app_id": app, "collection": "Lab", "purpose": "install"},
    )
    deployment_id = created.json()["deployment_id"]
    assert "requirements_unmet" not in deployments_of(ctx, fits)[deployment_id]
    unmet = deployments_of(ctx, old)[deployment_id]["requirements_unmet"]
    assert unmet == "no match: os_version >= 12"
