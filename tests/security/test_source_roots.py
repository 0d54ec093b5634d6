"""Package sources come only from the roots set on the site host, never from a home.

An operator who could name any folder as a source would publish the site's secrets
(admin.token, keys/signing.key, the embedded DP's credential) to every DP, where anyone
can download them. Each attack goes through a real `qm site serve`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import SiteServer, run_qm, start_site

pytestmark = pytest.mark.e2e


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[SiteServer]:
    server = start_site(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _operator_token(site: SiteServer) -> str:
    site.api("POST", "/api/v1/accounts", json={"name": "olga", "role": "operator"})
    return str(site.api("POST", "/api/v1/tokens", json={"account": "olga"})["token"])


def _create(site: SiteServer, token: str, source: Path | str) -> httpx.Response:
    return httpx.post(
        f"{site.url}/api/v1/packages",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "name": "Loot",
            "source": str(source),
            "programs": [{"name": "Install", "command": "sh install.sh"}],
        },
        timeout=60,
    )


def _blobs(site: SiteServer) -> set[str]:
    return {p.name for p in (site.home / "library").rglob("*") if p.is_file()}


def _secret_hashes(site: SiteServer) -> set[str]:
    secrets = [site.home / "admin.token", site.home / "keys" / "signing.key"]
    secrets += [site.home / "dp" / "enrollment.token"]
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in secrets if p.is_file()}


def test_an_operator_cannot_publish_a_home_or_a_folder_around_one(
    sqlite_site: SiteServer, tmp_path: Path
) -> None:
    site = sqlite_site
    token = _operator_token(site)
    dp_home = tmp_path / "standalone-dp"  # a DP home on this host, as `qm dp serve` makes it
    dp_home.mkdir()
    (dp_home / "dp.json").write_text(json.dumps({"credential": "dp-secret"}))
    (dp_home / "install.sh").write_text("echo\n")
    client_home = tmp_path / "client"
    client_home.mkdir()
    (client_home / "client.json").write_text("{}")
    (client_home / "secret").write_text("client-secret\n")
    around = tmp_path / "around"  # a folder that holds a DP home further down
    (around / "deep").mkdir(parents=True)
    (around / "install.sh").write_text("echo\n")
    (around / "deep" / "dp.json").write_text("{}")
    refused = {
        site.home: "is the site home",
        site.home / "keys": "is inside the site home",
        site.home / "dp": "is inside the site home",
        tmp_path: "contains the site home",
        dp_home: "distribution point home",
        client_home: "client home",
        around: "distribution point home",
    }
    for source, words in refused.items():
        answer = _create(site, token, source)
        assert answer.status_code == 422, (source, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "bad_source", error
        assert words in error["message"], (source, error)
    assert site.api("GET", "/api/v1/packages")["packages"] == []
    assert not _blobs(site) & _secret_hashes(site)


def test_sources_outside_the_roots_are_refused_and_only_the_host_sets_roots(
    sqlite_site: SiteServer, tmp_path: Path
) -> None:
    site = sqlite_site
    token = _operator_token(site)
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    for folder in (allowed / "app", elsewhere):
        folder.mkdir(parents=True)
        (folder / "install.sh").write_text("echo\n")
    listed = run_qm("site", "source-roots", "--home", str(site.home), "--add", str(allowed))
    assert str(allowed.resolve()) in listed.stdout.split()
    run_qm("site", "source-roots", "--home", str(site.home), "--remove", "/tmp")
    assert run_qm("site", "source-roots", "--home", str(site.home)).stdout.split() == [
        str(allowed.resolve())
    ]
    answer = _create(site, token, elsewhere)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "outside the site's source roots" in error["message"], error
    assert "qm site source-roots" in error["hint"], error
    link = allowed / "link"  # a link inside a root that leads out of it
    link.symlink_to(elsewhere)
    assert _create(site, token, link).status_code == 422
    assert _create(site, token, f"{allowed}/../elsewhere").status_code == 422
    created = _create(site, token, allowed / "app")
    assert created.status_code == 202, created.text  # a snapshot job (docs/protocol.md)
    assert site.qm("job", "wait", str(created.json()["job_id"])).code == 0
    # No API widens the roots: the settings API knows no such setting.
    widened = httpx.post(
        f"{site.url}/api/v1/settings",
        headers={"Authorization": f"Bearer {site.token}"},
        json={"source_roots": ["/"]},
        timeout=30,
    )
    assert widened.status_code == 422, widened.text
    # Roots narrowed on the host: `package update` of the old source is refused too.
    run_qm("site", "source-roots", "--home", str(site.home), "--add", str(elsewhere))
    run_qm("site", "source-roots", "--home", str(site.home), "--remove", str(allowed))
    package = created.json()["package_id"]
    (allowed / "app" / "install.sh").write_text("echo changed\n")
    update = site.qm("package", "update", package, check=False)
    assert update.code != 0 and "outside the site's source roots" in update.stderr


def test_a_root_may_not_be_a_home_or_inside_one(sqlite_site: SiteServer) -> None:
    """A root around the site home is fine (a source there is still refused, see above)."""
    site = sqlite_site
    for root in (site.home, site.home / "library"):
        result = run_qm(
            "site", "source-roots", "--home", str(site.home), "--add", str(root), check=False
        )
        assert result.code != 0 and "site home" in result.stderr, result.stderr
