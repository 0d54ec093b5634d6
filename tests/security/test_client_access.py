"""Unapproved and blocked clients get nothing; re-keying replaces a client's secret safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.models import StatusMessageRow
from tests.security.conftest import SiteApi, bearer

UID = "status-0000001"
STATUS = {
    "messages": [
        {
            "uid": UID,
            "message_id": 10002,
            "time": "2026-11-25T00:00:00Z",
            "deployment_id": None,
            "package_id": None,
            "insertion_strings": [],
        }
    ]
}


def _client_calls(package_hash: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/api/client/v1/policy", None),
        ("GET", f"/api/client/v1/manifests/{package_hash}", None),
        ("GET", f"/api/client/v1/locations/{package_hash}", None),
        ("POST", "/api/client/v1/status", STATUS),
        ("POST", "/api/client/v1/inventory", {"hostname": "lab-01"}),
    ]


def _answers(site: SiteApi, secret: str, package_hash: str) -> list[tuple[int, str]]:
    answers = []
    for method, path, body in _client_calls(package_hash):
        response = site.http.request(method, path, headers=bearer(secret), json=body)
        code = response.json()["error"]["code"] if response.status_code >= 400 else ""
        answers.append((response.status_code, code))
    return answers


def _status_rows(site: SiteApi, client_id: str) -> int:
    with site.ctx.db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(StatusMessageRow)
                .where(
                    StatusMessageRow.client_id == client_id,
                    StatusMessageRow.uid == f"{client_id}:{UID}",
                )
            )
            or 0
        )


def _published(site: SiteApi, tmp_path: Path) -> str:
    _, package_hash = site.publish_package(tmp_path / "src")
    credential = site.enroll_dp("branch")
    site.report_installed(credential, package_hash)
    return package_hash


def test_with_approval_required_a_new_client_gets_nothing_until_approved(
    site_api: SiteApi, tmp_path: Path
) -> None:
    package_hash = _published(site_api, tmp_path)
    earlier_id, earlier_secret, earlier = site_api.register_client("before")
    site_api.ok("POST", "/api/v1/settings", json={"require_approval": True})

    client_id, secret, answer = site_api.register_client("lab-02")

    assert earlier["approval"] == "approved" and answer["approval"] == "pending"
    assert _answers(site_api, secret, package_hash) == [(403, "approval_pending")] * 5
    assert _status_rows(site_api, client_id) == 0
    assert _answers(site_api, earlier_secret, package_hash)[0][0] == 200  # not affected
    pending = site_api.ok("GET", "/api/v1/clients", "viewer", params={"approval": "pending"})
    assert [c["client_id"] for c in pending["clients"]] == [client_id]

    site_api.ok("POST", f"/api/v1/clients/{client_id}/approve")

    assert [status for status, _ in _answers(site_api, secret, package_hash)] == [200] * 5
    locations = site_api.http.get(
        f"/api/client/v1/locations/{package_hash}", headers=bearer(secret)
    ).json()["locations"]
    assert [entry["dp"] for entry in locations] == ["branch"]
    assert _status_rows(site_api, client_id) == 1
    assert earlier_id != client_id


def test_a_blocked_client_gets_nothing_and_cannot_rekey_until_approved(
    site_api: SiteApi, tmp_path: Path
) -> None:
    package_hash = _published(site_api, tmp_path)
    client_id, secret, _ = site_api.register_client()
    assert [status for status, _ in _answers(site_api, secret, package_hash)] == [200] * 5

    blocked = site_api.ok("POST", f"/api/v1/clients/{client_id}/block")

    assert blocked["approval"] == "blocked"
    assert _answers(site_api, secret, package_hash) == [(403, "client_blocked")] * 5
    rekey = site_api.http.post("/api/client/v1/rekey", headers=bearer(secret))
    assert (rekey.status_code, rekey.json()["error"]["code"]) == (403, "client_blocked")

    site_api.ok("POST", f"/api/v1/clients/{client_id}/approve")
    assert site_api.http.get("/api/client/v1/policy", headers=bearer(secret)).status_code == 200


def test_operators_and_viewers_cannot_approve_block_or_rekey_clients(site_api: SiteApi) -> None:
    client_id, _, _ = site_api.register_client()
    for role in ("viewer", "operator"):
        for verb in ("approve", "block", "rekey"):
            response = site_api.call("POST", f"/api/v1/clients/{client_id}/{verb}", role)
            assert response.status_code == 403, (role, verb)


def test_require_approval_is_shared_by_every_site_process(site_api: SiteApi) -> None:
    """Two site processes on one database: a setting changed through one holds in the other."""
    other_ctx = SiteContext.open(site_api.root)
    try:
        from fastapi.testclient import TestClient

        other = TestClient(create_app(other_ctx))
        site_api.ok("POST", "/api/v1/settings", json={"require_approval": True})
        answer = other.post("/api/client/v1/register", json={"hostname": "via-other"})
        assert answer.json()["approval"] == "pending"
        shown = other.get("/api/v1/settings", headers=bearer(site_api.tokens["viewer"])).json()
        assert shown["require_approval"] is True
        site_api.ok("POST", "/api/v1/settings", json={"require_approval": False})
        assert (
            other.post("/api/client/v1/register", json={"hostname": "via-other-2"}).json()[
                "approval"
            ]
            == "approved"
        )
        other.close()
    finally:
        other_ctx.close()


def test_settings_refuse_unknown_names_wrong_types_and_non_admins(site_api: SiteApi) -> None:
    assert site_api.call("POST", "/api/v1/settings", json={"nope": True}).status_code == 422
    assert (
        site_api.call("POST", "/api/v1/settings", json={"require_approval": "yes"}).status_code
        == 422
    )
    assert site_api.call("POST", "/api/v1/settings", json={}).status_code == 422
    assert (
        site_api.call(
            "POST", "/api/v1/settings", "operator", json={"require_approval": True}
        ).status_code
        == 403
    )
    assert site_api.ok("GET", "/api/v1/settings", "viewer")["require_approval"] is False
    assert site_api.ok("GET", "/api/v1/settings", "viewer")["content_grace_seconds"] == 3600


def test_rekey_the_old_secret_only_buys_a_new_one_which_then_replaces_it(site_api: SiteApi) -> None:
    client_id, old, _ = site_api.register_client()
    policy = "/api/client/v1/policy"
    assert site_api.http.get(policy, headers=bearer(old)).status_code == 200

    marked = site_api.ok("POST", f"/api/v1/clients/{client_id}/rekey")

    assert marked["rekey_required"] is True
    refused = site_api.http.get(policy, headers=bearer(old))
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "rekey_required")
    first = site_api.http.post("/api/client/v1/rekey", headers=bearer(old)).json()
    lost_and_asked_again = site_api.http.post("/api/client/v1/rekey", headers=bearer(old)).json()
    new = lost_and_asked_again["client_secret"]
    assert first["client_id"] == client_id and new != first["client_secret"] != old

    assert site_api.http.get(policy, headers=bearer(first["client_secret"])).status_code == 401
    assert site_api.http.get(policy, headers=bearer(new)).status_code == 200
    assert site_api.http.get(policy, headers=bearer(old)).status_code == 401
    assert site_api.http.post("/api/client/v1/rekey", headers=bearer(old)).status_code == 401
    listed = site_api.ok("GET", "/api/v1/clients")["clients"]
    assert [c["rekey_required"] for c in listed if c["client_id"] == client_id] == [False]
    entries = site_api.ok("GET", "/api/v1/audit", params={"action": "client_api.rekey"})
    assert [e["account"] for e in entries["entries"]] == [f"client {client_id}"] * 2


def test_a_client_may_rotate_its_secret_unasked_and_the_old_one_works_until_the_new_is_used(
    site_api: SiteApi,
) -> None:
    _, old, _ = site_api.register_client()
    new = site_api.http.post("/api/client/v1/rekey", headers=bearer(old)).json()["client_secret"]
    assert site_api.http.get("/api/client/v1/policy", headers=bearer(old)).status_code == 200
    assert site_api.http.get("/api/client/v1/policy", headers=bearer(new)).status_code == 200
    assert site_api.http.get("/api/client/v1/policy", headers=bearer(old)).status_code == 401


def test_a_pending_client_may_rekey(site_api: SiteApi) -> None:
    site_api.ok("POST", "/api/v1/settings", json={"require_approval": True})
    _, old, _ = site_api.register_client()
    answer = site_api.http.post("/api/client/v1/rekey", headers=bearer(old))
    assert answer.status_code == 200
    new = answer.json()["client_secret"]
    refused = site_api.http.get("/api/client/v1/policy", headers=bearer(new))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "approval_pending")


def test_approving_and_blocking_move_a_client_in_and_out_of_its_collections(
    site_api: SiteApi,
) -> None:
    site_api.ok(
        "POST", "/api/v1/collections", "operator", json={"name": "Linux", "rules": ['os = "linux"']}
    )
    site_api.ok("POST", "/api/v1/settings", json={"require_approval": True})
    client_id, _, _ = site_api.register_client()

    def members() -> list[str]:
        shown = site_api.ok("GET", "/api/v1/collections/Linux", "viewer")
        return [m["client_id"] for m in shown["members"]]

    assert members() == []
    site_api.ok("POST", f"/api/v1/clients/{client_id}/approve")
    assert members() == [client_id]
    site_api.ok("POST", f"/api/v1/clients/{client_id}/block")
    assert members() == []
