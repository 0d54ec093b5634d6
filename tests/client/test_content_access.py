"""Content from real DPs on 127.0.0.1: fallback on bad bytes, resume, cache reuse, refusals."""

from __future__ import annotations

import socket
from pathlib import Path

from quartermaster.client.local_state import Result
from quartermaster.core.hashing import sha256_bytes

from .conftest import ClientWorld, deployment_entry
from .servers import StoreServer, write_store

SETUP = b"#!/bin/sh\necho setup\n" * 100
DATA = bytes(range(256)) * 400


def flipped(data: bytes) -> bytes:
    return data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_bad_bytes_on_one_dp_are_reported_and_the_next_dp_is_used(
    world: ClientWorld, tmp_path: Path
) -> None:
    package = world.package({"setup.sh": SETUP, "data.bin": DATA})
    bad = {sha: flipped(data) if data == DATA else data for sha, data in package.blobs.items()}
    with (
        StoreServer(write_store(tmp_path / "bad", bad)) as dp_bad,
        StoreServer(write_store(tmp_path / "good", package.blobs)) as dp_good,
    ):
        world.serve_from(package, ("dp-bad", dp_bad.url), ("dp-good", dp_good.url))
        world.publish(deployment_entry(package))
        world.run()
    sha = package.sha_of("data.bin")
    [mismatch] = world.site.messages(10075)
    assert mismatch["insertion_strings"] == [
        "QM120000",
        "QM100001",
        "Install",
        "dp-bad",
        "data.bin",
        sha,
        sha,
        sha256_bytes(flipped(DATA)),
    ]
    assert mismatch["dp"] == "dp-bad"
    assert mismatch["properties"]["package_hash"] == package.package_hash
    assert mismatch["properties"]["dp"] == "dp-bad"
    assert world.site.ids()[-1] == 10008
    assert (world.work() / "data.bin").read_bytes() == DATA
    assert "dp-good" in world.site.messages(10036)[0]["insertion_strings"][6]


def test_a_dp_that_served_bad_bytes_is_not_asked_again_in_the_same_run(
    world: ClientWorld, tmp_path: Path
) -> None:
    package = world.package({"a.bin": DATA, "b.bin": SETUP})
    bad = {sha: flipped(data) for sha, data in package.blobs.items()}
    with (
        StoreServer(write_store(tmp_path / "bad", bad)) as dp_bad,
        StoreServer(write_store(tmp_path / "good", package.blobs)) as dp_good,
    ):
        world.serve_from(package, ("dp-bad", dp_bad.url), ("dp-good", dp_good.url))
        world.publish(deployment_entry(package))
        world.run()
    assert len(dp_bad.blob_requests()) == 1
    assert len(world.site.messages(10075)) == 1
    assert len(dp_good.blob_requests()) == 2
    assert world.site.ids()[-1] == 10008


def test_an_unreachable_dp_is_reported_and_skipped(world: ClientWorld, dp: StoreServer) -> None:
    package = world.package({"setup.sh": SETUP})
    write_store(dp.root, package.blobs)
    world.serve_from(package, ("dp-down", closed_port_url()), ("dp1", dp.url))
    world.publish(deployment_entry(package))
    world.run()
    [failed] = world.site.messages(10050)
    assert failed["insertion_strings"][3] == "dp-down" and failed["dp"] == "dp-down"
    assert world.site.ids()[-1] == 10008


def test_without_good_bytes_anywhere_the_program_does_not_run(
    world: ClientWorld, tmp_path: Path
) -> None:
    package = world.package({"setup.sh": SETUP})
    bad = {sha: flipped(data) for sha, data in package.blobs.items()}
    with StoreServer(write_store(tmp_path / "bad", bad)) as dp_bad:
        world.serve_from(package, ("dp-bad", dp_bad.url))
        world.publish(deployment_entry(package))
        world.run()
    [unavailable] = world.site.messages(10051)
    assert unavailable["insertion_strings"][3] == "1"
    assert "dp-bad" in unavailable["insertion_strings"][4]
    assert 10005 not in world.site.ids()
    assert not world.work().exists()
    assert world.state().result == Result.CONTENT_UNAVAILABLE


def test_a_cut_transfer_resumes_with_range_at_the_next_run(
    world: ClientWorld, dp: StoreServer
) -> None:
    package = world.deploy(dp, {"data.bin": DATA})
    dp.drop_after = 40_000
    world.run()
    assert world.site.messages(10050) and world.site.messages(10051)
    sha = package.sha_of("data.bin")
    partial = world.home.cache / "content" / "sha256" / sha[:2] / f"{sha}.part"
    assert partial.stat().st_size == 40_000
    dp.drop_after = None
    world.run()
    assert dp.blob_requests()[-1][1] == "bytes=40000-"
    assert world.site.messages(10035)[-1]["insertion_strings"][4] == str(len(DATA) - 40_000)
    assert "resumed from 40000" in world.log("cas")
    assert world.site.ids()[-1] == 10008
    assert (world.work() / "data.bin").read_bytes() == DATA
    assert not partial.exists()


def test_cached_blobs_are_not_fetched_again(world: ClientWorld, dp: StoreServer) -> None:
    shared = world.deploy(dp, {"data.bin": DATA})
    world.run()
    assert len(dp.blob_requests()) == 1
    other = world.package({"copy-of-data.bin": DATA, "setup.sh": SETUP}, package_id="QM100002")
    write_store(dp.root, other.blobs)
    world.serve_from(other, ("dp1", dp.url))
    world.publish(deployment_entry(shared), deployment_entry(other, deployment_id="QM120001"))
    world.run()
    requested = [path for path, _ in dp.blob_requests()]
    assert len(requested) == 2 and requested[-1].endswith(sha256_bytes(SETUP))
    assert world.site.messages(10036)[-1]["insertion_strings"][5] == str(len(SETUP))
    assert (world.work("QM120001") / "copy-of-data.bin").read_bytes() == DATA


def test_download_start_and_verification_are_reported(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, {"a.bin": DATA, "b.bin": SETUP})
    world.run()
    [start] = world.site.messages(10035)
    assert start["insertion_strings"][3:] == ["1", str(len(DATA) + len(SETUP)), "dp1"]
    [verified] = world.site.messages(10036)
    assert verified["insertion_strings"][3:] == ["1", "2", str(len(DATA) + len(SETUP)), "dp1"]
    assert world.site.ids().index(10036) < world.site.ids().index(10005)


def test_unmet_requirements_are_reported_and_nothing_is_downloaded(
    world: ClientWorld, dp: StoreServer
) -> None:
    package = world.deploy(dp, requirements={"os": ["plan9"]})
    world.run()
    world.run()
    [unmet] = world.site.messages(10018)
    assert "plan9" in unmet["insertion_strings"][3]
    assert dp.requests == []
    assert ("manifest", package.package_hash) not in world.site.calls
    assert world.state().result == Result.REQUIREMENTS_NOT_MET


def test_a_manifest_of_another_version_is_refused_and_nothing_runs(
    world: ClientWorld, dp: StoreServer
) -> None:
    v1 = world.package({"setup.sh": SETUP}, version=1)
    v2 = world.package({"setup.sh": DATA}, version=2)
    write_store(dp.root, {**v1.blobs, **v2.blobs})
    world.serve_from(v1, ("dp1", dp.url))
    world.site.manifests[v1.package_hash] = v2.envelope  # the site hands out the wrong one
    world.publish(deployment_entry(v1))
    world.run()
    [refused] = world.site.messages(10055)
    assert "is not the package hash" in refused["insertion_strings"][4]
    assert dp.requests == []
    assert 10005 not in world.site.ids()
    assert world.state().result == Result.MANIFEST_REFUSED


def test_a_damaged_cached_blob_is_fetched_again_before_the_program_runs(
    world: ClientWorld, dp: StoreServer
) -> None:
    package = world.deploy(dp, {"data.bin": DATA}, rerun="always")
    world.run()
    sha = package.sha_of("data.bin")
    cached = world.home.cache / "content" / "sha256" / sha[:2] / sha
    cached.write_bytes(flipped(DATA))
    world.run("QM120000")
    assert len(dp.blob_requests()) == 2
    assert (world.work() / "data.bin").read_bytes() == DATA
    assert world.site.ids()[-1] == 10008
