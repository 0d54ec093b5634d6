"""Retention and garbage collection: after a prune, the library and every DP hold only the
kept versions' bytes, once the grace period for downloads under way has passed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from quartermaster.core.store_layout import blob_relpath
from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import DPServer, SiteServer, start_dp, wait_until
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]

BIG = 1 << 20


def new_version(source: Path, number: int) -> dict[str, str]:
    """Give the source a new payload and a new 1 MiB file; every file's SHA-256 by name."""
    (source / "payload.txt").write_text(f"version {number}\n")
    (source / "big.bin").write_bytes(os.urandom(BIG))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}


def blobs(store: Path) -> set[str]:
    folder = store / "content" / "sha256"
    return {p.name for p in folder.glob("*/*") if len(p.name) == 64}


def manifests(store: Path) -> set[str]:
    return {p.name.removesuffix(".json") for p in (store / "manifests").glob("*.json")}


def settings(site: SiteServer, grace: int) -> None:
    site.api("POST", "/api/v1/settings", json={"content_grace_seconds": grace})


def test_pruning_to_one_version_leaves_only_its_blobs_after_the_grace_period(
    site: SiteServer, tmp_path: Path
) -> None:
    branch: DPServer = start_dp(site, tmp_path, "branch", fallback=True)
    try:
        settings(site, 3600)
        target = tmp_path / "installed" / "payload.txt"
        source = make_source(tmp_path / "src", target)
        files = [new_version(source, 1)]
        package_id = create_package(site, source)
        for dp in ("site", "branch"):
            wait_installed(site, package_id, dp, version=1)
        for number in (2, 3):
            files.append(new_version(source, number))
            site.qm("package", "update", package_id)
        for dp in ("site", "branch"):
            wait_installed(site, package_id, dp, version=3)
        shown = site.api("GET", f"/api/v1/packages/{package_id}")
        hashes = [v["package_hash"] for v in shown["versions"]]
        assert len(hashes) == 3
        stores = {"library": site.home / "library", "site": site.home / "dp" / "store"}
        stores["branch"] = branch.store
        logs = {"site": site.home / "dp" / "distmgr.log", "branch": branch.home / "distmgr.log"}
        for name, log in logs.items():  # DPs hold only the newest version, after the grace
            wait_until(
                lambda log=log: (
                    f"version {hashes[0]} is no longer assigned: kept" in log.read_text()
                ),
                f"DP {name} to keep version 1 for the grace period",
            )

        # A client starts downloading version 1's big file from the branch DP...
        old_blob = files[0]["big.bin"]
        url = f"{branch.url}/{blob_relpath(old_blob)}"
        first = httpx.get(url, headers={"Range": f"bytes=0-{BIG // 2 - 1}"})
        assert first.status_code == 206

        # ...and the administrator prunes to one version meanwhile.
        pruned = site.qm("package", "prune", package_id, "--keep", "1", "--json").json()
        assert (pruned["kept"], pruned["pruned"], pruned["keep_versions"]) == ([3], [1, 2], 1)
        assert pruned["library"]["blobs"] == 0  # in the grace period: nothing deleted yet
        shown = site.api("GET", f"/api/v1/packages/{package_id}")
        assert [v["source_version"] for v in shown["versions"]] == [3]
        assert {d["source_version"] for d in shown["distribution"]} == {3}
        for name, store in stores.items():
            assert files[0]["big.bin"] in blobs(store), name

        # The download under way finishes, verified by its hash.
        rest = httpx.get(url, headers={"Range": f"bytes={BIG // 2}-"})
        assert rest.status_code == 206
        assert hashlib.sha256(first.content + rest.content).hexdigest() == old_blob

        # The grace period ends (set to 0 here rather than waited for): everything goes.
        settings(site, 0)
        swept = site.qm("package", "prune", package_id, "--json").json()
        assert swept["pruned"] == [] and swept["library"]["blobs"] == 4
        kept = set(files[2].values())
        for name, store in stores.items():
            wait_until(lambda store=store: blobs(store) == kept, f"{name} to hold only v3")
            assert manifests(store) == {hashes[2]}, name

        # A download that starts now finds nothing, and a client installs the kept version.
        assert httpx.get(url).status_code == 404
        client = tmp_path / "client"
        deploy_to(site, package_id, [register_client(site, client)], "Lab")
        run_client(client)
        assert target.read_text() == "version 3\n"
    finally:
        branch.stop()


def test_a_new_version_applies_the_retention_and_keeps_what_applications_install(
    site: SiteServer, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "src", tmp_path / "out.txt")
    new_version(source, 1)
    package_id = create_package(site, source)
    site.qm(
        "app",
        "create",
        "--name",
        "Pinned",
        "--package",
        package_id,
        "--install",
        "Install",
        "--detect",
        f"file:{tmp_path / 'out.txt'}",
    )
    for number in range(2, 6):
        new_version(source, number)
        site.qm("package", "update", package_id)
    shown = site.api("GET", f"/api/v1/packages/{package_id}")
    # The newest three, and version 1, which the application's current revision installs.
    assert [v["source_version"] for v in shown["versions"]] == [1, 3, 4, 5]


def test_prune_and_the_grace_setting_refuse_bad_input(site: SiteServer) -> None:
    """(Which roles may prune: tests/security/test_route_matrix.py checks every route.)"""
    bad = site.qm("package", "prune", "QM1FFFFF", check=False)
    assert bad.code != 0 and "does not exist" in bad.stderr
    zero = site.qm("package", "prune", "QM1FFFFF", "--keep", "0", check=False)
    assert zero.code != 0
    refused = httpx.post(
        f"{site.url}/api/v1/settings",
        json={"content_grace_seconds": -1},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert refused.status_code == 422 and "content_grace_seconds" in refused.text
