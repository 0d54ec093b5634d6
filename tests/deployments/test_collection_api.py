"""Collections through the real admin and client APIs (FastAPI app, TestClient)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from quartermaster.site.context import SiteContext
from tests.deployments.conftest import add_client, client_id_for

FACTS = {
    "hostname": "lab-01",
    "os": "linux",
    "os_version": "6.1",
    "architecture": "x86_64",
    "ip_addresses": ["10.1.2.3"],
    "agent_version": "0.1.0",
    "properties": {},
}


def error_of(response: Any) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    return error


def register(api: TestClient, **facts: Any) -> tuple[str, dict[str, str]]:
    """Register through the client API; the client's ID and its auth header."""
    answer = api.post("/api/client/v1/register", json={**FACTS, **facts})
    assert answer.status_code == 201, answer.text
    data = answer.json()
    return data["client_id"], {"Authorization": f"Bearer {data['client_secret']}"}


def test_create_with_rules_includes_excludes_and_windows(ctx: SiteContext, api: TestClient) -> None:
    add_client(ctx, "lab-01")
    add_client(ctx, "lab-02", os="windows")
    add_client(ctx, "srv-01")
    assert (
        api.post(
            "/api/v1/collections", json={"name": "Servers", "rules": ['hostname like "srv-%"']}
        ).status_code
        == 201
    )
    response = api.post(
        "/api/v1/collections",
        json={
            "name": "Lab",
            "rules": ['os = "linux" and hostname like "lab-%"', 'os = "windows"'],
            "include": ["Servers"],
            "exclude": [],
            "windows": ["sat 22:00-02:00 utc", "mon-fri 1:00-3:00 Europe/Berlin"],
        },
    )
    assert response.status_code == 201, response.text
    shown = api.get("/api/v1/collections/Lab").json()
    assert shown["rules"] == ['os = "linux" and hostname like "lab-%"', 'os = "windows"']
    assert shown["includes"] == ["Servers"] and shown["excludes"] == []
    assert shown["windows"] == ["Sat 22:00-02:00 UTC", "Mon-Fri 01:00-03:00 Europe/Berlin"]
    assert {m["hostname"]: m["reason"] for m in shown["members"]} == {
        "lab-01": "rule: os = linux and hostname like lab-%",
        "lab-02": "rule: os = windows",
        "srv-01": "included from Servers",
    }
    assert shown["member_count"] == 3
    listed = {c["name"]: c for c in api.get("/api/v1/collections").json()["collections"]}
    assert (listed["Lab"]["member_count"], listed["Lab"]["rule_count"]) == (3, 2)


def test_a_rule_syntax_error_is_a_422_with_line_column_and_caret(
    ctx: SiteContext, api: TestClient
) -> None:
    response = api.post("/api/v1/collections", json={"name": "Lab", "rules": ["os = linux"]})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert error["message"] == (
        "rule error at line 1, column 6: unexpected 'linux'\n  os = linux\n       ^"
    )
    assert error["hint"] == 'text values go in double quotes: "linux"'
    assert api.get("/api/v1/collections/Lab").status_code == 404

    api.post("/api/v1/collections", json={"name": "Lab"})
    response = api.post(
        "/api/v1/collections/Lab/rules", json={"rule": 'os = "linux"\nand hostnme = "lab-01"'}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["message"].startswith("rule error at line 2, column 5: unknown attribute")
    assert error["message"].endswith('  and hostnme = "lab-01"\n      ^')
    assert error["hint"].startswith("did you mean hostname?")
    assert api.get("/api/v1/collections/Lab").json()["rules"] == []


def test_rule_window_and_link_changes_through_the_api(ctx: SiteContext, api: TestClient) -> None:
    add_client(ctx, "lab-01")
    add_client(ctx, "lab-02", architecture="arm64")
    for name in ("Lab", "Arm"):
        api.post("/api/v1/collections", json={"name": name})
    api.post("/api/v1/collections/Arm/rules", json={"rule": 'arch = "arm64"'})
    shown = api.post("/api/v1/collections/Lab/rules", json={"rule": 'hostname like "lab-%"'})
    assert {m["hostname"] for m in shown.json()["members"]} == {"lab-01", "lab-02"}

    shown = api.post("/api/v1/collections/Lab/excludes", json={"collection": "Arm"})
    assert shown.json()["excludes"] == ["Arm"]
    assert [m["hostname"] for m in shown.json()["members"]] == ["lab-01"]
    conflict = api.post("/api/v1/collections/Lab/includes", json={"collection": "Arm"})
    assert conflict.status_code == 409
    shown = api.post("/api/v1/collections/Lab/excludes/remove", json={"collection": "Arm"})
    assert shown.json()["excludes"] == []
    assert len(shown.json()["members"]) == 2

    shown = api.post("/api/v1/collections/Lab/windows", json={"window": "daily 1:00-3:00 UTC"})
    assert shown.json()["windows"] == ["daily 01:00-03:00 UTC"]
    bad = api.post("/api/v1/collections/Lab/windows", json={"window": "Sat 22:00-02:00"})
    assert bad.status_code == 422 and "no time zone" in error_of(bad)["message"]
    shown = api.post(
        "/api/v1/collections/Lab/windows/remove", json={"window": "DAILY 01:00-03:00 utc"}
    )
    assert shown.json()["windows"] == []

    shown = api.post("/api/v1/collections/Lab/rules/remove", json={"rule": "hostname LIKE 'lab-%'"})
    assert shown.json()["rules"] == [] and shown.json()["members"] == []
    assert (
        api.post("/api/v1/collections/Nope/rules", json={"rule": 'os = "linux"'}).status_code == 404
    )
    extra = api.post("/api/v1/collections/Lab/rules", json={"rule": 'os = "x"', "more": 1})
    assert extra.status_code == 422


def test_registration_evaluates_the_new_client(ctx: SiteContext, api: TestClient) -> None:
    api.post("/api/v1/collections", json={"name": "Lab", "rules": ['hostname like "lab-%"']})
    client_id, _ = register(api, hostname="lab-01")
    other_id, _ = register(api, hostname="desk-01")
    members = api.get("/api/v1/collections/Lab").json()["members"]
    assert [(m["client_id"], m["reason"]) for m in members] == [
        (client_id, "rule: hostname like lab-%")
    ]
    assert other_id not in {m["client_id"] for m in members}


def test_inventory_report_re_evaluates_and_reaches_policy(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    api.post("/api/v1/collections", json={"name": "Big disks", "rules": ["free_disk_mb >= 10000"]})
    created = api.post(
        "/api/v1/deployments",
        json={"package_id": package_id, "program": "Install", "collection": "Big disks"},
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["deployment_id"]
    client_id, auth = register(api, hostname="lab-01", properties={"free_disk_mb": 500})
    policy = api.get("/api/client/v1/policy", headers=auth)
    assert policy.json()["signed"]["deployments"] == []

    report = api.post(
        "/api/client/v1/inventory",
        headers=auth,
        json={**FACTS, "properties": {"free_disk_mb": 20000}},
    )
    assert report.status_code == 200 and report.json() == {"membership_changed": True}
    fresh = api.get(
        "/api/client/v1/policy", headers={**auth, "If-None-Match": policy.headers["ETag"]}
    )
    assert fresh.status_code == 200
    assert [d["deployment_id"] for d in fresh.json()["signed"]["deployments"]] == [deployment_id]
    members = api.get("/api/v1/collections/Big disks").json()["members"]
    assert [(m["client_id"], m["reason"]) for m in members] == [
        (client_id, "rule: free_disk_mb >= 10000")
    ]

    again = api.post(
        "/api/client/v1/inventory",
        headers=auth,
        json={**FACTS, "properties": {"free_disk_mb": 20000}},
    )
    assert again.json() == {"membership_changed": False}
    refused = api.post("/api/client/v1/inventory", headers=auth, json={"hostname": ""})
    assert refused.status_code == 422
    anonymous = api.post(
        "/api/client/v1/inventory", headers={"Authorization": "Bearer x"}, json=FACTS
    )
    assert anonymous.status_code == 401


def test_direct_members_through_the_api(ctx: SiteContext, api: TestClient) -> None:
    client_id = add_client(ctx, "lab-01")
    api.post("/api/v1/collections", json={"name": "Lab"})
    shown = api.post("/api/v1/collections/Lab/members", json={"client_id": client_id}).json()
    assert [(m["hostname"], m["reason"]) for m in shown["members"]] == [("lab-01", "direct")]
    assert shown["direct_members"] == [client_id]
    shown = api.post("/api/v1/collections/Lab/members/remove", json={"client_id": client_id}).json()
    assert shown["members"] == [] and shown["direct_members"] == []
    missing = api.post(
        "/api/v1/collections/Lab/members/remove", json={"client_id": client_id_for("lab-01")}
    )
    assert missing.status_code == 404
