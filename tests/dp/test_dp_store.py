"""The DP store holds only verified blobs, once each, and cleans up what nothing uses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.errors import HashMismatch
from quartermaster.core.signing import SigningKey
from quartermaster.dp.store import BlobUnavailable, DPStore
from tests.dp.dp_fixtures import Serve, make_package, put_raw_blob, random_bytes


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_blob_file_copies_and_verifies(tmp_path: Path) -> None:
    data = random_bytes(5 * 1024 * 1024 + 3)  # more than one copy buffer
    source = tmp_path / "file"
    source.write_bytes(data)
    store = DPStore(tmp_path / "store")
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_blob_file(source, sha) == len(data)
    assert store.blob_path(sha).read_bytes() == data
    assert store.put_blob_file(source, sha) == 0  # already held: nothing copied
    assert _files(store.root) == [f"content/sha256/{sha[:2]}/{sha}"]


def test_put_blob_file_refuses_bytes_that_do_not_match(tmp_path: Path) -> None:
    source = tmp_path / "file"
    source.write_bytes(b"tampered")
    store = DPStore(tmp_path / "store")
    claimed = hashlib.sha256(b"original").hexdigest()
    with pytest.raises(HashMismatch):
        store.put_blob_file(source, claimed)
    assert not store.has_blob(claimed)
    assert _files(store.root) == []  # no temp file left behind


def test_fetch_skips_a_source_serving_bad_bytes(tmp_path: Path, serve: Serve) -> None:
    data = random_bytes(300_000)
    sha = put_raw_blob(tmp_path / "good", data)
    put_raw_blob(tmp_path / "bad", data[:-1] + bytes([data[-1] ^ 1]), name=sha)
    bad, good = serve(tmp_path / "bad"), serve(tmp_path / "good")
    store = DPStore(tmp_path / "store")
    outcome = store.fetch_blob(
        BlobFetcher(), ["http://127.0.0.1:1", bad.url, good.url], sha, len(data)
    )
    assert outcome.source == good.url
    assert len(outcome.failures) == 2
    assert outcome.failures[0].startswith("http://127.0.0.1:1:")
    assert outcome.failures[1].startswith(bad.url) and "SHA-256" in outcome.failures[1]
    assert store.blob_path(sha).read_bytes() == data
    assert _files(store.root) == [f"content/sha256/{sha[:2]}/{sha}"]


def test_fetch_raises_when_no_source_has_the_blob(tmp_path: Path, serve: Serve) -> None:
    empty = serve(tmp_path / "empty")
    store = DPStore(tmp_path / "store")
    sha = hashlib.sha256(b"nowhere").hexdigest()
    with pytest.raises(BlobUnavailable) as caught:
        store.fetch_blob(BlobFetcher(), [empty.url], sha, 7)
    assert "404" in caught.value.message
    assert not store.has_blob(sha)


def test_validation_finds_and_removes_a_flipped_byte(tmp_path: Path, site_key: SigningKey) -> None:
    store = DPStore(tmp_path / "store")
    package = make_package(
        site_key, {"a.bin": b"a" * 1000, "b.bin": b"b" * 1000}, library=store.root
    )
    good_sha, bad_sha = (e.sha256 for e in package.manifest.files)
    path = store.blob_path(bad_sha)
    flipped = bytearray(path.read_bytes())
    flipped[500] ^= 0x01
    path.write_bytes(bytes(flipped))
    assert store.validate([package.package_hash]) == [bad_sha]
    assert not store.has_blob(bad_sha)
    assert store.has_blob(good_sha)
    assert store.validate([package.package_hash]) == []  # nothing bad held any more
    assert store.missing_blobs(package.manifest) == {bad_sha: 1000}


def test_gc_removes_unassigned_version_but_keeps_shared_blobs(
    tmp_path: Path, site_key: SigningKey
) -> None:
    store = DPStore(tmp_path / "store")
    shared = b"runtime library" * 100
    old = make_package(site_key, {"lib.dll": shared, "app.exe": b"app v1"}, 1, store.root)
    new = make_package(site_key, {"lib.dll": shared, "app.exe": b"app v2"}, 2, store.root)
    shared_sha = hashlib.sha256(shared).hexdigest()
    v1_sha = hashlib.sha256(b"app v1").hexdigest()
    (store.blob_path(v1_sha).parent / ".tmp-killed.part").write_bytes(b"x")
    result = store.gc({new.package_hash})
    assert result.removed_versions == [old.package_hash]
    assert result.removed_blobs == 1
    assert store.held_versions() == [new.package_hash]
    assert store.has_blob(shared_sha)
    assert not store.has_blob(v1_sha)
    assert store.missing_blobs(new.manifest) == {}
    assert not list(store.root.rglob(".tmp-*"))


def test_gc_keeps_the_part_file_of_an_assigned_blob(tmp_path: Path, site_key: SigningKey) -> None:
    store = DPStore(tmp_path / "store")
    package = make_package(site_key, {"big.bin": b"z" * 4096})
    store.write_manifest(package.package_hash, package.envelope)
    sha = package.manifest.files[0].sha256
    part = store.blob_path(sha).with_name(f"{sha}.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"z" * 100)
    stray = store.blob_path("cd" * 32).with_name("cd" * 32 + ".part")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"q")
    store.gc({package.package_hash})
    assert part.exists()
    assert not stray.exists()


def test_blob_shared_by_two_versions_is_stored_and_transferred_once(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    library = tmp_path / "library"
    shared = random_bytes(200_000)
    v1 = make_package(site_key, {"setup.msi": shared, "v.txt": b"1"}, 1, library)
    v2 = make_package(
        site_key, {"setup.msi": shared, "v.txt": b"2", "copy.msi": shared}, 2, library
    )
    server = serve(library)
    store = DPStore(tmp_path / "store")
    fetcher = BlobFetcher()
    for package in (v1, v2):
        store.write_manifest(package.package_hash, package.envelope)
        for sha, size in store.missing_blobs(package.manifest).items():
            store.fetch_blob(fetcher, [server.url], sha, size)
    shared_sha = hashlib.sha256(shared).hexdigest()
    assert len(server.blob_hits(shared_sha)) == 1
    blobs = [f for f in _files(store.root) if f.startswith("content/")]
    assert len(blobs) == 3  # setup.msi and copy.msi are one blob; v.txt 1 and 2
    assert store.validate([v1.package_hash, v2.package_hash]) == []


def test_used_bytes_counts_blobs_and_manifests(tmp_path: Path, site_key: SigningKey) -> None:
    store = DPStore(tmp_path / "store")
    assert store.used_bytes() == 0
    package = make_package(site_key, {"a": b"a" * 1000, "b": b"b" * 24}, library=store.root)
    assert store.used_bytes() == 1024 + len(package.envelope)


def test_damaged_manifest_is_dropped_so_it_is_fetched_again(
    tmp_path: Path, site_key: SigningKey
) -> None:
    store = DPStore(tmp_path / "store")
    package = make_package(site_key, {"a": b"a"}, library=store.root)
    store.manifest_path(package.package_hash).write_bytes(b'{"signed": {"format": 1')
    store.gc({package.package_hash})
    assert not store.has_manifest(package.package_hash)
