"""A package of thousands of small files installs whole through a standalone DP (pack
requests) and through a stock nginx over a DP store (one GET per blob), and a program that
edits its laid-out files in place does not damage what the next run gets."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.nginx_server import Nginx
from tests.e2e.processes import SiteServer, start_dp
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    deployment_status,
    messages,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]
LOOPBACK = "127.0.0.0/8"
FILES = 3000


def many_files_source(folder: Path, marker: Path) -> Path:
    """FILES small files in 300 folders, SHA256SUMS of them all, and an install program that
    checks every file, then appends to one of them in place (as a careless installer
    running as root would) and leaves a line in `marker` for each run."""
    rng = random.Random(16)
    sums = []
    for i in range(FILES):
        relpath = f"doc/pkg{i // 10:03d}/file{i:04d}.txt"
        data = i.to_bytes(4, "big") + rng.randbytes(rng.choice((0, 40, 700, 3000, 20000)))
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {relpath}\n")
    (folder / "SHA256SUMS").write_text("".join(sums))
    (folder / "install.sh").write_text(
        "set -e\n"
        "sha256sum --quiet -c SHA256SUMS\n"
        f"echo installed >> '{marker}'\n"
        "chmod u+w doc/pkg000/file0000.txt\n"
        "echo edited-in-place >> doc/pkg000/file0000.txt\n"
    )
    return folder


def _client_log(client: Path) -> str:
    return "".join(p.read_text() for p in (client / "logs").glob("cas*"))


def _downloaded_from(site: SiteServer, client_id: str) -> list[str]:
    return [
        m["insertion_strings"][6]
        for m in messages(site, client=client_id)
        if m["message_id"] == 10036
    ]


def test_many_small_files_install_through_a_dp_and_survive_an_editing_program(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed.txt"
    package_id = create_package(site, many_files_source(tmp_path / "src", marker))
    dp = start_dp(site, tmp_path, "edge", boundaries=(LOOPBACK,))
    try:
        wait_installed(site, package_id, dp="edge")
        site.qm("package", "remove-dp", package_id, "--dp", "site")
        client = tmp_path / "client"
        client_id = register_client(site, client)
        first = deploy_to(site, package_id, [client_id], "Docs")
        run_client(client)
        second = deploy_to(site, package_id, [client_id], "Docs again")
        run_client(client)  # the first run's program edited a file the cache links

        assert marker.read_text() == "installed\ninstalled\n"  # both runs checked all files
        for deployment_id in (first, second):
            status = deployment_status(site, deployment_id)
            assert status["counts"]["succeeded"] == 1 and status["counts"]["failed"] == 0
        assert _downloaded_from(site, client_id)[0] == "edge"
        log = _client_log(client)
        assert f"pack from edge: {FILES + 2} of {FILES + 2} blobs" in log
        assert "cached blob" in log and "damaged" in log  # the edited blob, caught and healed
        assert all(m["message_id"] != 10075 for m in messages(site, client=client_id))
        dp_logs = "".join(p.read_text() for p in (tmp_path / "dp-edge").rglob("*.log"))
        assert f"{FILES + 2} of {FILES + 2} blobs, " in dp_logs  # the DP filled in packs
    finally:
        dp.stop()


def test_many_small_files_install_through_stock_nginx_without_packs(
    nginx: Nginx, site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed.txt"
    package_id = create_package(site, many_files_source(tmp_path / "src", marker))
    dp = start_dp(site, tmp_path, "edge", boundaries=(LOOPBACK,), public_url=nginx.url)
    try:
        wait_installed(site, package_id, dp="edge")
        nginx.start(dp.store)
        site.qm("package", "remove-dp", package_id, "--dp", "site")
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Docs")

        run_client(client)

        assert marker.read_text() == "installed\n"
        assert _downloaded_from(site, client_id) == ["edge"]
        access = (tmp_path / "nginx" / "access.log").read_text()
        assert access.count("GET /content/sha256/") >= FILES
        assert "POST /content/pack" in access  # asked once, refused, not asked again
    finally:
        dp.stop()
