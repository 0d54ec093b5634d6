"""The audit log records who changed what for every state-changing admin route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from quartermaster.site.web.access import requirement_of
from tests.security.conftest import SiteApi
from tests.security.test_route_matrix import route_cases


def _entries(site: SiteApi, **params: Any) -> list[dict[str, Any]]:
    return list(site.ok("GET", "/api/v1/audit", params=params)["entries"])


def test_every_state_changing_admin_route_writes_an_audit_row(site_api: SiteApi) -> None:
    """Even a change that fails (here: an empty body) is logged, with how it ended."""
    changes = [
        c
        for c in route_cases(site_api.http.app)  # type: ignore[arg-type]
        if c.path.startswith("/api/v1/") and c.method != "GET"
    ]
    assert len(changes) >= 30
    for case in changes:
        before = _entries(site_api, limit=1)
        status, _ = case.send(site_api, site_api.tokens["admin"])
        after = _entries(site_api, limit=2)
        assert isinstance(case.route, APIRoute)
        requirement = requirement_of(case.route)
        assert requirement is not None
        newest = after[0]
        assert not before or newest["id"] > before[0]["id"], f"{case.method} {case.path}"
        assert (newest["account"], newest["action"], newest["status"]) == (
            "admin",
            requirement.action,
            status,
        ), (case.method, case.path, newest)
        assert newest["outcome"] == ("ok" if status < 400 else "failed")
        assert newest["details"]["route"] == f"{case.method} {case.path}"


def test_a_change_is_logged_with_its_object_and_request(site_api: SiteApi, tmp_path: Path) -> None:
    package_id, _ = site_api.publish_package(tmp_path / "src", name="Notepad")
    entry = _entries(site_api, account="olga", action="package.create")[0]
    assert (entry["object"], entry["outcome"], entry["status"]) == (package_id, "ok", 202)
    assert entry["details"]["request"]["name"] == "Notepad"
    assert entry["source"] == "127.0.0.1"
    datetime.fromisoformat(entry["time"])

    job = site_api.ok("POST", f"/api/v1/packages/{package_id}/update", "operator")
    site_api.wait_for_job(job["job_id"])
    entry = _entries(site_api, action="package.update")[0]
    assert (entry["account"], entry["object"]) == ("olga", package_id)


def test_refused_changes_are_logged_as_denied_and_reads_are_not_logged(site_api: SiteApi) -> None:
    count = len(_entries(site_api, limit=1000))
    for _ in range(3):
        site_api.ok("GET", "/api/v1/packages", "viewer")
    assert len(_entries(site_api, limit=1000)) == count

    refused = site_api.call(
        "POST", "/api/v1/dps", "operator", json={"name": "x", "url": "http://127.0.0.1:9"}
    )

    assert refused.status_code == 403
    entry = _entries(site_api, account="olga")[0]
    assert (entry["action"], entry["outcome"], entry["status"]) == ("dp.create", "denied", 403)
    assert site_api.call("POST", "/api/v1/collections", None, json={"name": "x"}).status_code == 401
    assert len(_entries(site_api, limit=1000)) == count + 1  # nobody has no row to write


def test_secrets_in_requests_never_reach_the_log(site_api: SiteApi) -> None:
    site_api.ok(
        "POST", "/api/v1/accounts/olga/password", json={"password": "a very secret pass phrase"}
    )
    entry = _entries(site_api, action="account.update")[0]
    assert entry["details"]["request"] == {"password": "[redacted]"}
    token = site_api.ok("POST", "/api/v1/dps", json={"name": "d1", "url": "http://127.0.0.1:9"})[
        "enrollment_token"
    ]
    assert token not in str(_entries(site_api, limit=1000))


def test_the_log_filters_by_account_action_and_time(site_api: SiteApi) -> None:
    site_api.ok("POST", "/api/v1/collections", "operator", json={"name": "c1"})
    site_api.ok("POST", "/api/v1/collections", "admin", json={"name": "c2"})
    assert [e["object"] for e in _entries(site_api, action="collection.create")] == ["c2", "c1"]
    assert [
        e["object"] for e in _entries(site_api, account="olga", action="collection.create")
    ] == ["c1"]
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert _entries(site_api, since=future) == []
    assert (
        _entries(site_api, until=future, action="collection.create", limit=1)[0]["object"] == "c2"
    )
    oldest_first_page = _entries(site_api, limit=2)
    next_page = _entries(site_api, limit=2, before_id=oldest_first_page[-1]["id"])
    assert next_page[0]["id"] < oldest_first_page[-1]["id"]


def test_only_admins_read_the_log(site_api: SiteApi) -> None:
    for role in ("viewer", "operator"):
        assert site_api.call("GET", "/api/v1/audit", role).status_code == 403
