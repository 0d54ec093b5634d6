"""The peer cache for real: five clients in a branch office behind a 100 Mbit/s WAN link.

Built in network namespaces (tests/e2e/branch_office.py): the site and its DP in a
"datacenter", each client in a namespace of its own on the branch's bridge, the WAN a veth
pair shaped with tc tbf. The WAN link's interface counters say how many bytes crossed it.
Skipped, with the reason, only where namespaces cannot be created.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.branch_office import BranchOffice, namespaces_unavailable
from tests.e2e.processes import wait_until
from tests.e2e.scenario import create_package, deploy_to, deployment_status, messages

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
IDLE_SECONDS = 5.0  # long enough to see the polls' and peer reports' bytes a few times


@pytest.fixture
def office(tmp_path: Path) -> Iterator[BranchOffice]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(f"the branch-office test needs network namespaces: {reason}")
    branch = BranchOffice(tmp_path, clients=5)
    try:
        branch.create()
        yield branch
    finally:
        branch.close()


def package_source(folder: Path, files: int, size: int, chunked: int = 0) -> tuple[Path, list[str]]:
    """Random files (nothing compresses or repeats), with one of `chunked` bytes (above the
    site's chunk threshold) if asked, and a program that reads them."""
    folder.mkdir(parents=True)
    hashes = []
    for index, length in enumerate([size] * files + ([chunked] if chunked else [])):
        data = os.urandom(length)
        (folder / f"part{index}.bin").write_bytes(data)
        hashes.append(hashlib.sha256(data).hexdigest())
    (folder / "install.sh").write_text("cat part*.bin > /dev/null\n")
    return folder, hashes


def succeeded(office: BranchOffice, deployment_id: str, count: int) -> bool:
    assert office.site is not None
    return bool(deployment_status(office.site, deployment_id)["counts"]["succeeded"] == count)


def corrupt_in_place(path: Path) -> None:
    """Flip one byte as bit rot would: same file, same size, same modification time."""
    info = path.stat()
    with path.open("r+b") as handle:
        handle.seek(info.st_size // 2)
        byte = handle.read(1)
        handle.seek(info.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_branch_moves_one_copy_over_the_wan_and_skips_a_peer_that_serves_bad_bytes(
    office: BranchOffice, tmp_path: Path
) -> None:
    site = office.start_site()
    # the site-wide switch stays off; the branch's boundary turns it on
    office.admin(
        "site", "settings", "--peer-cache-boundaries",
        json.dumps([{"boundary": office.lan, "peer_cache": True}]),
    )  # fmt: skip
    ids = office.register_clients()
    office.start_clients()
    office.wait_peers_serving()

    # peers serve a chunked file's chunks as slices of the file their caches hold whole
    source, first_hashes = package_source(
        tmp_path / "first", files=4, size=2 * MIB, chunked=6 * MIB
    )
    size = sum(f.stat().st_size for f in source.iterdir())  # 14 MiB and the script
    package_id = create_package(site, source, name="Branch first")
    idle_start = office.wan_bytes()
    time.sleep(IDLE_SECONDS)  # measures the background rate; nothing is asserted on time
    began = time.monotonic()
    idle_rate = (office.wan_bytes() - idle_start) / IDLE_SECONDS
    start = office.wan_bytes()
    deployment_id = deploy_to(site, package_id, ids, "Branch")
    wait_until(lambda: succeeded(office, deployment_id, 5), "5 clients succeeded", 300)
    wan = office.wan_bytes() - start
    overhead = idle_rate * (time.monotonic() - began)
    print(f"WAN bytes {wan} for a package of {size} bytes; background {overhead:.0f}")
    assert wan <= 1.05 * size + overhead, (wan, size, overhead)

    status = deployment_status(site, deployment_id)
    assert status["counts"]["succeeded"] == 5 and status["counts"]["failed"] == 0
    sources = status["content_sources"]
    assert sources["fallback"] + sources["boundary"] <= size  # one client fetched over WAN
    assert sources["peer"] == 5 * size - sources["fallback"] - sources["boundary"]
    assert sources["peer"] >= 4 * size - size // 4
    large = first_hashes[-1]
    for home in office.homes:  # every client verified every blob it used
        assert "SHA-256 verified" in (home / "logs" / "cas.log").read_text()
        assert (home / "cache" / "content" / "sha256" / large[:2] / large).is_file()

    # A peer whose cached blob rots is detected, skipped, reported, and withdrawn.
    second, hashes = package_source(tmp_path / "second", files=2, size=1 * MIB)
    second_id = create_package(site, second, name="Branch second")
    first_run = deploy_to(site, second_id, [ids[0]], "First of branch")
    wait_until(lambda: succeeded(office, first_run, 1), "client 0 holds the second package")
    bad = hashes[0]
    corrupt_in_place(office.homes[0] / "cache" / "content" / "sha256" / bad[:2] / bad)
    second_run = deploy_to(site, second_id, [ids[1]], "Second of branch")
    wait_until(lambda: succeeded(office, second_run, 1), "client 1 installed from elsewhere")
    mismatches = [m for m in messages(site, deployment=second_run) if m["message_id"] == 10075]
    assert [m["dp"] for m in mismatches] == [f"peer:{ids[0]}"]
    reported = site.qm("status", "messages", "--message-id", "2370", "--json").json()
    assert [m["client_id"] for m in reported["messages"]] == [ids[0]]
    bad_path = office.homes[0] / "cache" / "content" / "sha256" / bad[:2] / bad
    wait_until(
        lambda: site.qm("status", "messages", "--message-id", "2371", "--json").json()["messages"],
        "the peer re-validated its cache",
    )
    if bad_path.exists():  # fetched again since, from a good source
        assert hashlib.sha256(bad_path.read_bytes()).hexdigest() == bad
