"""The console's diagnosis, names and health pages in-process (no browser): who may open
the new routes, and the same client lookup and DP health in the REST API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from quartermaster.console import create_console
from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.setup import init_site
from tests.console.populated import Populated, populate
from tests.e2e.site_templates import with_migrated_sqlite

PASSWORD = "correct horse battery staple"
VIEWER_PASSWORD = "viewer pass phrase 1"


@dataclass
class Site:
    ctx: SiteContext
    found: Populated
    app: TestClient  # no cookies, no token: a stranger
    api: TestClient  # the admin's API token

    def browser(self, name: str, password: str) -> TestClient:
        """A signed-in console session of `name`."""
        http = TestClient(self.app.app, base_url="http://127.0.0.1:8440", follow_redirects=False)
        page = http.get("/console/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        answer = http.post(
            "/console/sign-in",
            data={"csrf_token": token.group(1), "username": name, "password": password},
        )
        assert answer.status_code == 303
        return http


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("insight")
    root = with_migrated_sqlite(base / "site")
    init_site(root, "QM1", "insight tests", admin_password=PASSWORD)
    found = populate(base / "site", base)
    ctx = SiteContext.open(base / "site")
    app = create_app(ctx)
    app.include_router(create_console(ctx))
    token = ctx.home.admin_token_path.read_text().strip()
    stranger = TestClient(app, base_url="http://127.0.0.1:8440", follow_redirects=False)
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    api.post(
        "/api/v1/accounts", json={"name": "vera", "role": "viewer", "password": VIEWER_PASSWORD}
    )
    try:
        yield Site(ctx, found, stranger, api)
    finally:
        stranger.close()
        api.close()
        ctx.close()


def _new_routes(found: Populated) -> list[str]:
    seven_zip = found.packages["7-Zip 23.01"]
    return [
        "/console/status/catalog",
        "/console/applications",
        f"/console/applications/{found.apps['7-Zip (app)']}",
        "/console/jobs",
        "/console/jobs?part=running",
        f"/console/packages/{seven_zip}/deployments",
        f"/console/packages/{seven_zip}/deployments?part=rows",
        f"/console/packages/{seven_zip}/content-status",
        f"/console/packages/{seven_zip}/content-status?part=rows",
        "/console/collections/Lab/deployments",
        "/console/clients/kiosk",
    ]


def test_a_stranger_is_sent_to_sign_in_from_every_new_page(site: Site) -> None:
    for route in _new_routes(site.found):
        answer = site.app.get(route)
        assert answer.status_code == 303, route
        assert answer.headers["location"].startswith("/console/sign-in?next="), route


def test_a_viewer_reads_every_new_page_but_is_offered_no_action(site: Site) -> None:
    viewer = site.browser("vera", VIEWER_PASSWORD)
    for route in _new_routes(site.found):
        answer = viewer.get(route)
        expected = 409 if route.endswith("/kiosk") else 200  # the choice between twins
        assert answer.status_code == expected, (route, answer.text[-500:])
        actions = set(re.findall(r'<form method="post" action="([^"]*)"', answer.text))
        assert actions <= {"/console/sign-out"}, (route, actions)
    page = viewer.get("/console/dps/dp-bad").text
    assert "Validate now" not in page
    refused = viewer.post(
        "/console/dps/dp-bad/validate",
        data={"csrf_token": re.findall(r'name="csrf-token" content="([^"]+)"', page)[0]},
    )
    assert refused.status_code == 403


def test_the_api_takes_a_host_name_for_a_client_and_refuses_a_shared_one(site: Site) -> None:
    found = site.found
    mine = site.api.get("/api/v1/status-messages", params={"client": "LAB-01"}).json()
    assert {m["client_id"] for m in mine["messages"]} == {found.failed_client}
    twins = site.api.get("/api/v1/status-messages", params={"client": "kiosk"})
    assert twins.status_code == 409
    error = twins.json()["error"]
    assert error["code"] == "ambiguous"
    assert all(c in error["message"] for c in found.twins)
    unknown = site.api.get("/api/v1/status-messages", params={"client": "nobody-here"})
    assert unknown.status_code == 404
    created = site.api.post("/api/v1/collections", json={"name": "By name"})
    assert created.status_code in (200, 201), created.text
    added = site.api.post("/api/v1/collections/By name/members", json={"client_id": "lab-09"})
    assert added.status_code in (200, 201, 204), added.text
    shown = site.api.get("/api/v1/collections/By name").json()
    assert found.clients["lab-09"] in shown["direct_members"]
    blocked = site.api.post("/api/v1/clients/lab-10/block")
    assert blocked.status_code == 200 and blocked.json()["approval"] == "blocked"
    assert site.api.post("/api/v1/clients/kiosk/block").status_code == 409


def test_dp_health_in_the_api_counts_content_and_mismatches(site: Site) -> None:
    dps = {d["name"]: d["health"] for d in site.api.get("/api/v1/dps").json()["dps"]}
    assert dps["dp-bad"]["level"] == "error"
    assert dps["dp-bad"]["mismatches"] == 3  # the one of last week is not counted
    assert dps["dp-bad"]["content"]["installed"] == 3
    assert dps["dp-new"]["level"] == "warning" and dps["dp-new"]["reachable"] is None
    assert "never enrolled" in dps["dp-new"]["summary"]
    assert dps["dp-pending"]["level"] == "warning"
    assert dps["dp-pending"]["content"] == {
        "installed": 0,
        "in_progress": 3,
        "failed": 0,
        "validation_failed": 0,
    }
