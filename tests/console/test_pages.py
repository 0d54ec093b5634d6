"""The console in-process (FastAPI's test client): sessions, CSRF, the audit trail and
paging over thousands of rows, without a browser."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench.console_page import seed
from fastapi.testclient import TestClient

from quartermaster.console import create_console, sessions
from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.identity import audit
from quartermaster.site.setup import init_site
from tests.e2e.site_templates import with_migrated_sqlite

PASSWORD = "correct horse battery staple"


@dataclass
class Site:
    ctx: SiteContext
    http: TestClient

    def sign_in(self, name: str = "admin", password: str = PASSWORD) -> int:
        page = self.http.get("/console/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        answer = self.http.post(
            "/console/sign-in",
            data={"csrf_token": token.group(1), "username": name, "password": password},
        )
        return answer.status_code

    def csrf(self) -> str:
        token = re.search(r'name="csrf-token" content="([^"]+)"', self.http.get("/console/").text)
        assert token
        return token.group(1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = with_migrated_sqlite(tmp_path / "site")
    init_site(root, "QM1", "console tests", admin_password=PASSWORD)
    ctx = SiteContext.open(tmp_path / "site")
    app = create_app(ctx)
    app.include_router(create_console(ctx))
    http = TestClient(app, base_url="http://127.0.0.1:8440", follow_redirects=False)
    try:
        yield Site(ctx, http)
    finally:
        http.close()
        ctx.close()


def test_pages_need_a_session_and_a_wrong_password_gets_none(site: Site) -> None:
    answer = site.http.get("/console/deployments")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fdeployments"
    assert site.sign_in(password="not the password") == 401
    assert site.http.get("/console/").status_code == 303
    assert site.sign_in() == 303
    assert site.http.get("/console/").status_code == 200


def test_the_session_cookie_is_strict_http_only_and_cannot_be_forged(site: Site) -> None:
    site.sign_in()
    cookie = site.http.cookies[sessions.COOKIE]
    header = site.http.get("/console/sign-in").headers.get("set-cookie", "")
    assert header == ""  # an existing session is kept, not re-issued
    forged = cookie[:-1] + ("B" if cookie.endswith("A") else "A")  # never the real one
    site.http.cookies.clear()  # the jar sends only the forged cookie
    site.http.cookies.set(sessions.COOKIE, forged, path="/console")
    assert site.http.get("/console/").status_code == 303
    site.http.cookies.clear()  # and the real one, set the same way, is a session
    site.http.cookies.set(sessions.COOKIE, cookie, path="/console")
    assert site.http.get("/console/").status_code == 200


def test_sign_in_sets_a_strict_http_only_cookie(site: Site) -> None:
    page = site.http.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    answer = site.http.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "username": "admin", "password": PASSWORD},
    )
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie


def test_changing_the_password_ends_console_sessions(site: Site) -> None:
    site.sign_in()
    with site.ctx.db.session() as session:
        from quartermaster.site.identity.accounts import set_password

        set_password(session, "admin", "another long pass phrase")
    assert site.http.get("/console/").status_code == 303


def test_repeated_failed_sign_ins_are_throttled(site: Site) -> None:
    for _ in range(5):
        assert site.sign_in("nobody", "wrong password!") == 401
    assert site.sign_in("nobody", "wrong password!") == 429


def test_a_console_action_is_audited_like_the_rest_route(site: Site, tmp_path: Path) -> None:
    site.sign_in()
    source = tmp_path / "src"
    source.mkdir()
    (source / "setup.sh").write_text("echo ok\n")
    answer = site.http.post(
        "/console/packages",
        data={
            "csrf_token": site.csrf(),
            "name": "Tool",
            "source": str(source),
            "program_name": "Install",
            "program_command": "sh setup.sh",
        },
    )
    assert answer.status_code == 303
    with site.ctx.db.session() as session:
        entry = audit.query(session, action="package.create")[0]
    assert (entry["account"], entry["outcome"], entry["object"]) == ("admin", "ok", "QM100001")
    assert entry["details"]["request"]["csrf_token"] == "[redacted]"
    assert entry["details"]["request"]["name"] == "Tool"


def test_a_failed_action_is_audited_as_failed_and_shown_to_the_user(site: Site) -> None:
    site.sign_in()
    answer = site.http.post(
        "/console/packages/QM1FFFFF/update",
        data={"csrf_token": site.csrf()},
        headers={"referer": "http://127.0.0.1:8440/console/packages"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/packages"
    shown = site.http.get("/console/packages")
    assert "package QM1FFFFF does not exist" in shown.text
    with site.ctx.db.session() as session:
        entry = audit.query(session, action="package.update")[0]
    assert (entry["outcome"], entry["status"]) == ("failed", 404)


def _client_ids(html: str) -> list[str]:
    return re.findall(r'<td><a href="/console/clients/([0-9a-f-]{36})"[^>]*>', html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.parametrize("state", ["", "failed"])
def test_deployment_pages_walk_every_client_once_forward_and_back(site: Site, state: str) -> None:
    """Above 5,000 matching clients the page walks the hostname index; below it sorts."""
    random.seed(5200)  # the same mix of states every run
    deployment_id = seed(site.ctx, clients=5200, messages=0)
    site.sign_in()
    url = f"/console/deployments/{deployment_id}" + (f"?state={state}" if state else "")
    pages: list[list[str]] = []
    html = site.http.get(url).text
    for _ in range(3):
        pages.append(_client_ids(html))
        following = _link(html, "next")
        assert following is not None
        html = site.http.get(f"/console/deployments/{deployment_id}{following}").text
    seen = [c for page in pages for c in page]
    assert len(seen) == len(set(seen)) == 150
    back = _link(html, "prev")
    assert back is not None
    assert (
        _client_ids(site.http.get(f"/console/deployments/{deployment_id}{back}").text) == pages[2]
    )
    with site.ctx.db.session() as session:
        from quartermaster.site.deployments.deployments import deployment_status

        ordered = deployment_status(session, deployment_id, limit=150, state=state or None)
    assert seen == [c["client_id"] for c in ordered["clients"]]


def test_the_deployment_page_shows_where_the_clients_bytes_came_from(site: Site) -> None:
    """Peers, DPs of the boundary, fallback DPs: summed over the deployment's 10036."""
    from quartermaster.site.models import StatusMessageRow, utcnow

    deployment_id = seed(site.ctx, clients=3, messages=0)
    with site.ctx.db.session() as session:
        for index, split in enumerate(((0, 0, 700), (500, 0, 0), (600, 0, 0))):
            session.add(
                StatusMessageRow(
                    uid=f"sources-{index}",
                    message_id=10036,
                    severity="informational",
                    component="ContentAccess",
                    deployment_id=deployment_id,
                    properties=dict(
                        zip(("bytes_peer", "bytes_boundary", "bytes_fallback"), split, strict=True)
                    ),
                    time=utcnow(),
                )
            )
    site.sign_in()
    html = site.http.get(f"/console/deployments/{deployment_id}").text
    block = html[html.index('id="content-sources"') :]
    assert '<dd data-source="peer">1100 bytes</dd>' in block
    assert '<dd data-source="boundary">0 bytes</dd>' in block
    assert '<dd data-source="fallback">700 bytes</dd>' in block
