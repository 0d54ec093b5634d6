"""A retired DP's credential stops working and clients are no longer sent to it; re-enrolling
gives it a new one-time token."""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import SiteApi, bearer


def _dp_names(site: SiteApi, secret: str, package_hash: str) -> list[str]:
    answer = site.http.get(f"/api/client/v1/locations/{package_hash}", headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    return [entry["dp"] for entry in answer.json()["locations"]]


def test_a_retired_dp_loses_its_credential_and_its_clients(
    site_api: SiteApi, tmp_path: Path
) -> None:
    package_id, package_hash = site_api.publish_package(tmp_path / "src")
    credential = site_api.enroll_dp("branch")
    site_api.report_installed(credential, package_hash)
    _, client_secret, _ = site_api.register_client()
    assert _dp_names(site_api, client_secret, package_hash) == ["branch"]

    retired = site_api.ok("POST", "/api/v1/dps/branch/retire")

    assert retired == {"name": "branch", "state": "retired"}
    assert _dp_names(site_api, client_secret, package_hash) == []
    for method, path in [
        ("GET", "/api/dp/v1/assignments"),
        ("POST", "/api/dp/v1/report"),
        ("GET", f"/api/dp/v1/manifests/{package_hash}"),
    ]:
        response = site_api.http.request(
            method, path, headers=bearer(credential), json={} if method == "POST" else None
        )
        assert response.status_code == 401, (path, response.text)
    listed = site_api.ok("GET", "/api/v1/dps", "viewer")["dps"]
    assert [(d["name"], d["state"]) for d in listed if d["name"] == "branch"] == [
        ("branch", "retired")
    ]
    refused = site_api.call(
        "POST", f"/api/v1/packages/{package_id}/distribute", "operator", json={"dps": ["branch"]}
    )
    assert refused.status_code == 409


def test_reenroll_issues_a_one_time_token_and_the_old_credential_stays_dead(
    site_api: SiteApi, tmp_path: Path
) -> None:
    _, package_hash = site_api.publish_package(tmp_path / "src")
    old = site_api.enroll_dp("branch")
    site_api.report_installed(old, package_hash)
    _, client_secret, _ = site_api.register_client()

    token = site_api.ok("POST", "/api/v1/dps/branch/reenroll")["enrollment_token"]

    assert site_api.http.get("/api/dp/v1/assignments", headers=bearer(old)).status_code == 401
    assert _dp_names(site_api, client_secret, package_hash) == []  # unverified until it reports
    enrolled = site_api.http.post("/api/dp/v1/enroll", json={"enrollment_token": token})
    assert enrolled.status_code == 200
    new = enrolled.json()["credential"]
    assert new != old
    again = site_api.http.post("/api/dp/v1/enroll", json={"enrollment_token": token})
    assert again.status_code == 401
    assignments = site_api.http.get("/api/dp/v1/assignments", headers=bearer(new)).json()
    assert [(a["state"], a["validate"]) for a in assignments["assignments"]] == [("pending", True)]
    site_api.report_installed(new, package_hash)  # says "installed" without re-hashing
    assert _dp_names(site_api, client_secret, package_hash) == []
    site_api.report_installed(new, package_hash, validated=True)
    assert _dp_names(site_api, client_secret, package_hash) == ["branch"]
    assert site_api.http.get("/api/dp/v1/assignments", headers=bearer(old)).status_code == 401


def test_a_retired_dp_can_be_reenrolled(site_api: SiteApi) -> None:
    site_api.enroll_dp("branch")
    site_api.ok("POST", "/api/v1/dps/branch/retire")
    token = site_api.ok("POST", "/api/v1/dps/branch/reenroll")["enrollment_token"]
    enrolled = site_api.http.post("/api/dp/v1/enroll", json={"enrollment_token": token})
    assert enrolled.status_code == 200
    states = {d["name"]: d["state"] for d in site_api.ok("GET", "/api/v1/dps")["dps"]}
    assert states["branch"] == "active"


def test_the_sites_own_dp_is_not_retired_and_only_admins_retire(site_api: SiteApi) -> None:
    response = site_api.call("POST", "/api/v1/dps/site/retire")
    assert response.status_code == 409 and "--no-dp" in response.json()["error"]["hint"]
    site_api.enroll_dp("branch")
    for verb in ("retire", "reenroll"):
        assert site_api.call("POST", f"/api/v1/dps/branch/{verb}", "operator").status_code == 403
    assert site_api.call("POST", "/api/v1/dps/nope/retire").status_code == 404
