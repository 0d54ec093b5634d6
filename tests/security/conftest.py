"""A real site (SQLite, made by `qm site init`'s code) behind FastAPI's TestClient, with one
API token per role, and helpers that speak the client and DP protocols to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.setup import init_site
from tests.e2e.processes import wait_until
from tests.e2e.site_templates import with_migrated_sqlite

ROLES = ("viewer", "operator", "admin")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class SiteApi:
    """The site's HTTP API in-process; `tokens[role]` is an API token of an account of it."""

    root: Path
    ctx: SiteContext
    http: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def call(
        self, method: str, path: str, role: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        headers = bearer(self.tokens[role]) if role else {}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        response = self.call(method, path, role, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()

    def add_account(self, name: str, role: str, password: str | None = None) -> str:
        """A new account with the given role; returns an API token of it."""
        body: dict[str, Any] = {"name": name, "role": role}
        if password is not None:
            body["password"] = password
        self.ok("POST", "/api/v1/accounts", json=body)
        return str(self.ok("POST", "/api/v1/tokens", json={"account": name})["token"])

    def register_client(self, hostname: str = "lab-01") -> tuple[str, str, dict[str, Any]]:
        answer = self.http.post(
            "/api/client/v1/register",
            json={"hostname": hostname, "os": "linux", "ip_addresses": ["10.1.2.3"]},
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return body["client_id"], body["client_secret"], body

    def publish_package(self, source: Path, name: str = "Tool") -> tuple[str, str]:
        """A package with one version; its ID and package hash."""
        source.mkdir(parents=True, exist_ok=True)
        (source / "install.sh").write_text("echo installed\n")
        created = self.ok(
            "POST",
            "/api/v1/packages",
            "operator",
            json={
                "name": name,
                "source": str(source),
                "programs": [{"name": "Install", "command": "sh install.sh"}],
            },
        )
        self.wait_for_job(created["job_id"])
        package = self.ok("GET", f"/api/v1/packages/{created['package_id']}", "viewer")
        return created["package_id"], package["versions"][-1]["package_hash"]

    def wait_for_job(self, job_id: int) -> dict[str, Any]:
        """A background job (a snapshot, ...) run by this app's runner, once it ended."""
        job = wait_until(
            lambda: (
                (j := self.ok("GET", f"/api/v1/jobs/{job_id}", "viewer"))["state"]
                in ("succeeded", "failed")
                and j
            ),
            f"job {job_id}",
        )
        assert job["state"] == "succeeded", job
        return dict(job)

    def enroll_dp(self, name: str, url: str = "http://127.0.0.1:9") -> str:
        """Register a fallback DP and enroll it; returns its credential."""
        token = self.ok("POST", "/api/v1/dps", json={"name": name, "url": url, "fallback": True})[
            "enrollment_token"
        ]
        answer = self.http.post("/api/dp/v1/enroll", json={"enrollment_token": token})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["credential"])

    def report_installed(self, credential: str, package_hash: str, validated: bool = False) -> None:
        """What a DP says once it holds a version (`validated`: after re-hashing it all)."""
        answer = self.http.post(
            "/api/dp/v1/report",
            headers=bearer(credential),
            json={
                "contents": [
                    {"package_hash": package_hash, "state": "installed", "validated": validated}
                ]
            },
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture
def site_api(tmp_path: Path) -> Iterator[SiteApi]:
    root = tmp_path / "site"
    home = init_site(with_migrated_sqlite(root), "QM1", "security tests")
    ctx = SiteContext.open(root)
    http = TestClient(create_app(ctx), client=("127.0.0.1", 50000))
    api = SiteApi(root, ctx, http, {"admin": home.admin_token_path.read_text().strip()})
    api.tokens["operator"] = api.add_account("olga", "operator")
    api.tokens["viewer"] = api.add_account("victor", "viewer")
    try:
        yield api
    finally:
        http.close()
        ctx.close()
