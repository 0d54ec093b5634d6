"""Distribution points that never serve a wrong byte, with real DP, site and client processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quartermaster.core.hashing import sha256_file
from quartermaster.core.store_layout import blob_path, manifest_path
from tests.conftest import ON_POSTGRESQL
from tests.e2e.cutting_proxy import CuttingProxy
from tests.e2e.nginx_server import Nginx
from tests.e2e.processes import SiteServer, start_dp, wait_until
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    deployment_status,
    make_source,
    messages,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]
LOOPBACK = "127.0.0.0/8"


def _files(site: SiteServer, package_id: str, version: int = 1) -> dict[str, str]:
    versions = site.api("GET", f"/api/v1/packages/{package_id}")["versions"]
    package_hash = versions[version - 1]["package_hash"]
    envelope = json.loads(manifest_path(site.home / "library", package_hash).read_text())
    return {f["path"]: f["sha256"] for f in envelope["signed"]["files"]}


def _downloaded_from(site: SiteServer, client_id: str) -> list[str]:
    return [
        m["insertion_strings"][6]
        for m in messages(site, client=client_id)
        if m["message_id"] == 10036
    ]


def _store_is_sound(store: Path) -> None:
    blobs = [p for p in (store / "content").rglob("*") if p.is_file()]
    assert blobs, "the DP store holds no blobs"
    for blob in blobs:
        assert not blob.name.endswith(".part") and not blob.name.startswith(".tmp"), blob
        assert sha256_file(blob)[0] == blob.name, f"{blob} fails verification"


def test_new_dp_after_source_edit_serves_the_published_bytes(
    site: SiteServer, tmp_path: Path
) -> None:
    """KB 907979, whole: the DP added after the edit copies the published version."""
    target = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", target, "published\n")
    package_id = create_package(site, source)
    (source / "payload.txt").write_text("edited, never published\n")
    dp = start_dp(site, tmp_path, "branch", boundaries=(LOOPBACK,))
    try:
        wait_installed(site, package_id, dp="branch")
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Branch office")

        run_client(client)

        assert target.read_text() == "published\n"
        assert _downloaded_from(site, client_id) == ["branch"]
        assert all(m["message_id"] != 10075 for m in messages(site, client=client_id))
        stored = blob_path(dp.store, _files(site, package_id)["payload.txt"])
        assert stored.read_text() == "published\n"
    finally:
        dp.stop()


def test_corrupt_dp_is_skipped_reported_and_repaired(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "good bytes\n"))
    dp = start_dp(site, tmp_path, "branch", boundaries=(LOOPBACK,))
    try:
        wait_installed(site, package_id, dp="branch")
        payload = blob_path(dp.store, _files(site, package_id)["payload.txt"])
        data = bytearray(payload.read_bytes())
        data[0] ^= 0x01
        payload.write_bytes(bytes(data))
        first = tmp_path / "client-1"
        first_id = register_client(site, first, "lab-01")
        deployment_id = deploy_to(site, package_id, [first_id], "Lab")

        run_client(first)

        assert target.read_text() == "good bytes\n"
        mismatches = [m for m in messages(site, client=first_id) if m["message_id"] == 10075]
        assert [m["dp"] for m in mismatches] == ["branch"]
        assert "site" in _downloaded_from(site, first_id)[0]  # the fallback, in the same run
        assert deployment_status(site, deployment_id)["counts"]["succeeded"] == 1
        site_ids = [m["message_id"] for m in messages(site, dp="branch")]
        assert 2360 in site_ids  # revalidation asked for on the client's report

        # no admin command: the DP's re-hash confirms the damage and it repairs itself
        wait_until(lambda: payload.read_text() == "good bytes\n", "the DP to repair its copy")
        wait_installed(site, package_id, dp="branch")
        second = tmp_path / "client-2"
        second_id = register_client(site, second, "lab-02")
        site.qm("collection", "add", "Lab", second_id)
        target.unlink()
        run_client(second)
        assert target.read_text() == "good bytes\n"
        assert _downloaded_from(site, second_id) == ["branch"]
        assert all(m["message_id"] != 10075 for m in messages(site, client=second_id))
    finally:
        dp.stop()


def test_interrupted_download_resumes_from_its_offset(
    site_whole_files: SiteServer, tmp_path: Path
) -> None:
    site = site_whole_files  # files stay whole: this is about one large blob
    size = 100 * 1024 * 1024
    source = make_source(tmp_path / "src", tmp_path / "installed" / "payload.txt")
    with open(source / "big.bin", "wb") as handle:
        handle.write(os.urandom(size))
    package_id = create_package(site, source)
    proxy = CuttingProxy(0)
    proxy_port = proxy.start()
    dp = start_dp(
        site,
        tmp_path,
        "branch",
        boundaries=(LOOPBACK,),
        public_url=f"http://127.0.0.1:{proxy_port}",
    )
    proxy.target_port = dp.port
    try:
        wait_installed(site, package_id, dp="branch")
        site.qm("package", "remove-dp", package_id, "--dp", "site")  # the proxied DP only
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Lab")
        proxy.cut_after = size // 2

        run_client(client)  # the connection is cut halfway: no DP left, content unavailable

        ids = [m["message_id"] for m in messages(site, client=client_id)]
        assert 10050 in ids and 10051 in ids and 10005 not in ids
        first_run = sum(proxy.downstream)
        assert size // 4 < first_run <= size // 2 + 65536

        run_client(client)

        second_run = sum(proxy.downstream) - first_run
        assert second_run < size * 0.6, f"{second_run} bytes moved: the download did not resume"
        assert 10008 in [m["message_id"] for m in messages(site, client=client_id)]
        big = next(p for p in (client / "cache").rglob(_files(site, package_id)["big.bin"]))
        assert sha256_file(big)[0] == big.name
    finally:
        proxy.stop()
        dp.stop()


def test_shared_and_unchanged_content_moves_once(
    site_whole_files: SiteServer, tmp_path: Path
) -> None:
    site = site_whole_files  # files stay whole: this is about one large blob
    shared = os.urandom(10 * 1024 * 1024)
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "shared.bin").write_bytes(shared)
    (first / "own.txt").write_text("a")
    (second / "own.txt").write_text("b")
    for i in range(99):
        (first / f"file-{i:02d}.dat").write_bytes(os.urandom(20_000))
    dp = start_dp(site, tmp_path, "branch", boundaries=(LOOPBACK,))
    try:
        package_a = create_package(site, first, "A", "true")
        package_b = create_package(site, second, "B", "true")
        wait_installed(site, package_a, dp="branch")
        wait_installed(site, package_b, dp="branch")
        sha = _files(site, package_a)["shared.bin"]
        assert len(list((dp.store / "content").rglob(sha))) == 1
        transferred = _bytes_transferred(site, "branch")
        assert sum(transferred.values()) < len(shared) * 1.2  # the shared blob moved once

        (first / "file-07.dat").write_bytes(os.urandom(20_000))
        site.qm("package", "update", package_a)
        wait_installed(site, package_a, dp="branch", version=2)
        moved = _bytes_transferred(site, "branch")[(package_a, "2")]
        assert 20_000 <= moved <= 20_000 * 1.05
    finally:
        dp.stop()


def _bytes_transferred(site: SiteServer, dp: str) -> dict[tuple[str, str], int]:
    return {
        (m["insertion_strings"][0], m["insertion_strings"][1]): int(m["insertion_strings"][3])
        for m in messages(site, dp=dp)
        if m["message_id"] == 2330
    }


def test_dp_killed_mid_distribution_resumes_and_stays_sound(
    site_whole_files: SiteServer, tmp_path: Path
) -> None:
    site = site_whole_files  # files stay whole: this is about one large blob
    source = tmp_path / "src"
    source.mkdir()
    size = 300 * 1024 * 1024
    with open(source / "big.bin", "wb") as handle:
        for _ in range(size // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    package_id = create_package(site, source, "Big", "true")
    dp = start_dp(site, tmp_path, "branch", boundaries=(LOOPBACK,))
    partials = dp.store / "content"

    def half_way() -> bool:
        return any(p.stat().st_size > size // 10 for p in partials.rglob("*.part"))

    wait_until(half_way, "a partial blob on the DP", interval=0.01)
    dp.daemon.kill()
    assert not list(partials.rglob(_files(site, package_id)["big.bin"]))  # never visible early
    dp.start()
    try:
        wait_installed(site, package_id, dp="branch")
        moved = _bytes_transferred(site, "branch")[(package_id, "1")]
        assert moved < size, "the restarted DP fetched the whole blob again"
        _store_is_sound(dp.store)
    finally:
        dp.stop()


def test_stock_nginx_serves_a_dp_store_to_clients(
    nginx: Nginx, site: SiteServer, tmp_path: Path
) -> None:
    """The DP agent keeps the store; nginx, configured as docs/operations.md says, serves it."""
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "via nginx\n"))
    dp = start_dp(site, tmp_path, "edge", boundaries=(LOOPBACK,), public_url=nginx.url)
    try:
        wait_installed(site, package_id, dp="edge")
        nginx.start(dp.store)
        site.qm("package", "remove-dp", package_id, "--dp", "site")  # nginx is the only source
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Edge")

        run_client(client)

        assert target.read_text() == "via nginx\n"
        assert _downloaded_from(site, client_id) == ["edge"]
        access = (tmp_path / "nginx" / "access.log").read_text()
        assert "GET /content/sha256/" in access and '" 200 ' in access
    finally:
        dp.stop()
