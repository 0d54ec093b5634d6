"""A large file stored as chunks installs through a standalone DP and through nginx; its next
version moves only the chunks that changed; a damaged chunk on a DP is skipped and healed."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from quartermaster.core.chunking import MAXIMUM
from quartermaster.core.hashing import sha256_file
from quartermaster.core.store_layout import blob_path, manifest_path
from tests.conftest import ON_POSTGRESQL
from tests.e2e.nginx_server import Nginx
from tests.e2e.processes import SiteServer, start_dp, wait_until
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
SIZE = 12 * 1024 * 1024  # above the 4 MiB threshold: about 20 chunks
PLACES = (3_000_000, 9_000_000)  # where version 2 changes 1,000 bytes each


def _source(folder: Path, target: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "big.bin").write_bytes(data)
    (folder / "install.sh").write_text(
        f"set -e\nmkdir -p '{target.parent}'\ncp big.bin '{target}'\n"
    )
    return folder


def _big_entry(site: SiteServer, package_id: str, version: int) -> dict[str, Any]:
    versions = site.api("GET", f"/api/v1/packages/{package_id}")["versions"]
    package_hash = versions[version - 1]["package_hash"]
    envelope = json.loads(manifest_path(site.home / "library", package_hash).read_text())
    assert envelope["signed"]["format"] == 3
    entry: dict[str, Any] = next(f for f in envelope["signed"]["files"] if f["path"] == "big.bin")
    return entry


def _client_bytes(site: SiteServer, client_id: str) -> list[int]:
    return [
        int(m["insertion_strings"][5])
        for m in messages(site, client=client_id)
        if m["message_id"] == 10036
    ]


def _dp_bytes(site: SiteServer, dp: str, package_id: str, version: int) -> int:
    return next(
        int(m["insertion_strings"][3])
        for m in messages(site, dp=dp)
        if m["message_id"] == 2330 and m["insertion_strings"][:2] == [package_id, str(version)]
    )


def test_chunked_file_installs_then_moves_only_changed_chunks_and_a_bad_chunk_heals(
    site: SiteServer, tmp_path: Path
) -> None:
    data = bytearray(random.Random(16).randbytes(SIZE))
    target = tmp_path / "installed" / "big.bin"
    source = _source(tmp_path / "src", target, bytes(data))
    package_id = create_package(site, source, "Image", "sh install.sh")
    dp = start_dp(site, tmp_path, "branch", boundaries=(LOOPBACK,))
    try:
        wait_installed(site, package_id, dp="branch")
        first = _big_entry(site, package_id, 1)
        assert first["sha256"] == hashlib.sha256(data).hexdigest() and len(first["chunks"]) > 10
        for chunk in first["chunks"]:  # the DP stores chunks, never the whole file
            assert sha256_file(blob_path(dp.store, chunk["sha256"]))[0] == chunk["sha256"]
        assert not blob_path(dp.store, first["sha256"]).exists()
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Lab")

        run_client(client)

        assert target.read_bytes() == data
        assert _client_bytes(site, client_id) == [SIZE + (source / "install.sh").stat().st_size]

        # version 2: 1,000 bytes changed in two places
        for place in PLACES:
            data[place : place + 1000] = random.Random(place).randbytes(1000)
        (source / "big.bin").write_bytes(bytes(data))
        assert site.qm("package", "update", package_id).stdout.strip() == "2"
        wait_installed(site, package_id, dp="branch", version=2)
        bound = len(PLACES) * (1000 + 2 * MAXIMUM)  # the changed bytes plus two chunks a place
        moved_to_dp = _dp_bytes(site, "branch", package_id, 2)
        assert 2000 <= moved_to_dp <= bound

        # a new chunk of version 2 is damaged on the DP before the client asks for it
        second = _big_entry(site, package_id, 2)
        old = {c["sha256"] for c in first["chunks"]}
        new = [c for c in second["chunks"] if c["sha256"] not in old]
        assert 1 <= len(new) <= 2 * len(PLACES)
        damaged = blob_path(dp.store, new[0]["sha256"])
        damaged.write_bytes(b"\x00" + damaged.read_bytes()[1:])
        site.qm("collection", "create", "Lab v2")
        site.qm("collection", "add", "Lab v2", client_id)
        deployment = site.qm(
            "deploy",
            "create",
            "--package",
            package_id,
            "--program",
            "Install",
            "--collection",
            "Lab v2",
        ).stdout.strip()

        run_client(client)

        assert target.read_bytes() == data
        assert deployment_status(site, deployment)["counts"]["succeeded"] == 1
        moved_to_client = _client_bytes(site, client_id)[-1]
        assert sum(c["length"] for c in new) == moved_to_client <= bound
        [mismatch] = [m for m in messages(site, client=client_id) if m["message_id"] == 10075]
        assert mismatch["dp"] == "branch"
        assert mismatch["insertion_strings"][5] == new[0]["sha256"]
        index = second["chunks"].index(new[0])
        assert (
            f"big.bin (chunk {index} at byte {new[0]['offset']})"
            == mismatch["insertion_strings"][4]
        )

        # the DP re-hashes on the client's report and fetches the chunk again
        wait_until(
            lambda: damaged.is_file() and sha256_file(damaged)[0] == new[0]["sha256"],
            "the DP to heal its damaged chunk",
        )
    finally:
        dp.stop()


def test_stock_nginx_serves_a_chunked_file_from_a_dp_store(
    nginx: Nginx, site: SiteServer, tmp_path: Path
) -> None:
    data = random.Random(17).randbytes(SIZE)
    target = tmp_path / "installed" / "big.bin"
    source = _source(tmp_path / "src", target, data)
    package_id = create_package(site, source, "Image", "sh install.sh")
    dp = start_dp(site, tmp_path, "edge", boundaries=(LOOPBACK,), public_url=nginx.url)
    try:
        wait_installed(site, package_id, dp="edge")
        nginx.start(dp.store)
        site.qm("package", "remove-dp", package_id, "--dp", "site")  # nginx is the only source
        client = tmp_path / "client"
        client_id = register_client(site, client)
        deploy_to(site, package_id, [client_id], "Edge")

        run_client(client)

        assert target.read_bytes() == data
        chunks = _big_entry(site, package_id, 1)["chunks"]
        access = (tmp_path / "nginx" / "access.log").read_text()
        served = [
            c for c in chunks if f"GET /content/sha256/{c['sha256'][:2]}/{c['sha256']} " in access
        ]
        assert len(served) == len(chunks)
        assert _client_bytes(site, client_id) == [SIZE + (source / "install.sh").stat().st_size]
    finally:
        dp.stop()
