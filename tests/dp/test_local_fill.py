"""A DP given a local library folder (the embedded DP) copies blobs from it, never taking a
copy whose own bytes do not hash to its name, and repairs itself without the library."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from quartermaster.core.component_log import ComponentLog
from quartermaster.core.signing import SigningKey
from quartermaster.core.store_layout import blob_path
from quartermaster.dp import local_fill
from quartermaster.dp.distributor import DistributionFailed, Distributor
from quartermaster.dp.store import Cancelled, DPStore
from tests.dp.dp_fixtures import Serve, make_package, put_raw_blob, random_bytes


def _distributor(tmp_path: Path, key: SigningKey, library: Path) -> Distributor:
    return Distributor(
        DPStore(tmp_path / "dp"),
        {key.keyid: key.public},
        ComponentLog(tmp_path, "distmgr"),
        local_library=library,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt_in_place(path: Path) -> None:
    """Different bytes under the same name, written into the file itself (same inode)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_a_fill_from_the_local_library_asks_no_source(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    files = {f"f{i}": random_bytes(100 + i) for i in range(40)}
    files |= {"big": random_bytes(5 << 20), "empty": b""}
    package = make_package(site_key, files, 1, tmp_path / "library")
    source = serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    pulled = distributor.pull(package.manifest, [source.url])
    assert source.hits == []  # nothing over HTTP
    assert pulled.blobs_fetched == len(package.manifest.blobs())
    assert pulled.bytes_done == pulled.bytes_total == sum(len(d) for d in files.values())
    for sha in package.manifest.blobs():
        held = distributor.store.blob_path(sha)
        assert _sha(held) == sha
        library_copy = blob_path(tmp_path / "library", sha)
        assert held.stat().st_ino != library_copy.stat().st_ino  # a copy, never a hard link
        assert held.stat().st_mode & 0o222 == 0  # read-only (0o444 less the umask)
    assert _temps(tmp_path / "dp") == []
    log = (tmp_path / "distmgr.log").read_text()
    assert f"from the local library {tmp_path / 'library'}: 42 of 42 blobs" in log
    assert "SHA-256 verified" in log


def test_a_corrupt_library_blob_is_never_accepted(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    good = random_bytes(9000)
    package = make_package(site_key, {"a": good, "b": b"fine"}, 1, tmp_path / "library")
    sha = hashlib.sha256(good).hexdigest()
    put_raw_blob(tmp_path / "library", random_bytes(9000), name=sha)  # other bytes, same size
    source = serve(tmp_path / "library")  # the site's /library serves the same bad bytes
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    with pytest.raises(DistributionFailed, match=sha):
        distributor.pull(package.manifest, [source.url])
    assert not distributor.store.has_blob(sha)
    assert list(distributor.store.missing_blobs(package.manifest)) == [sha]
    assert _temps(tmp_path / "dp") == []
    log = (tmp_path / "distmgr.log").read_text()
    assert f"blob {sha} in the local library" in log and "not taken: its bytes hash to" in log


def test_a_good_source_serves_what_the_library_holds_bad_or_lacks(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    bad, gone = random_bytes(3000), random_bytes(4000)
    package = make_package(site_key, {"bad": bad, "gone": gone}, 1, tmp_path / "peer")
    for data in (bad, gone):
        put_raw_blob(tmp_path / "library", data)
    bad_sha, gone_sha = hashlib.sha256(bad).hexdigest(), hashlib.sha256(gone).hexdigest()
    _corrupt_in_place(blob_path(tmp_path / "library", bad_sha))
    blob_path(tmp_path / "library", gone_sha).unlink()  # swept meanwhile
    peer = serve(tmp_path / "peer")
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    distributor.pull(package.manifest, [peer.url])
    assert distributor.store.blob_path(bad_sha).read_bytes() == bad
    assert distributor.store.blob_path(gone_sha).read_bytes() == gone
    assert "0 of 2 blobs" in (tmp_path / "distmgr.log").read_text()


def test_a_dp_blob_corrupted_later_is_repaired_and_the_library_is_untouched(
    tmp_path: Path, site_key: SigningKey
) -> None:
    data = random_bytes(70_000)
    package = make_package(site_key, {"a": data, "b": b"other"}, 1, tmp_path / "library")
    sha = hashlib.sha256(data).hexdigest()
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    distributor.accept_manifest(package.package_hash, package.envelope)
    distributor.pull(package.manifest, [])
    held, library_copy = distributor.store.blob_path(sha), blob_path(tmp_path / "library", sha)
    _corrupt_in_place(held)
    assert _sha(library_copy) == sha  # the DP's damage did not reach the library
    assert distributor.validate([package.package_hash]) == [sha]
    repaired = distributor.pull(package.manifest, [])
    assert (repaired.blobs_fetched, repaired.bytes_transferred) == (1, len(data))
    assert held.read_bytes() == data and library_copy.read_bytes() == data
    assert distributor.validate([package.package_hash]) == []


def test_what_a_clone_holds_is_hashed_not_what_the_library_holds(
    tmp_path: Path, site_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes verified are the store's copy: a copy method that went wrong is caught."""
    data = random_bytes(5000)
    package = make_package(site_key, {"a": data}, 1, tmp_path / "library")

    def bad_clone(dst: int, request: int, src: int) -> None:
        assert request == local_fill.FICLONE
        os.pwrite(dst, b"\0" * len(data), 0)  # a "reflink" that holds other bytes

    monkeypatch.setattr(local_fill.fcntl, "ioctl", bad_clone)
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    with pytest.raises(DistributionFailed):
        distributor.pull(package.manifest, [])
    assert distributor.store.missing_blobs(package.manifest)
    assert "not taken: its bytes hash to" in (tmp_path / "distmgr.log").read_text()


def test_each_copy_method_falls_back_to_the_next(
    tmp_path: Path, site_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"f{i}": random_bytes(1000 * i) for i in range(1, 6)}
    package = make_package(site_key, files, 1, tmp_path / "library")
    calls = {"ioctl": 0, "copy_file_range": 0}

    def no_clone(*_args: object) -> None:
        calls["ioctl"] += 1
        raise OSError(errno.EOPNOTSUPP, "no reflink here")

    def no_copy_range(*_args: object) -> int:
        calls["copy_file_range"] += 1
        raise OSError(errno.EXDEV, "other file system")

    monkeypatch.setattr(local_fill.fcntl, "ioctl", no_clone)
    monkeypatch.setattr(local_fill.os, "copy_file_range", no_copy_range)
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    distributor.pull(package.manifest, [])
    assert distributor.store.missing_blobs(package.manifest) == {}
    assert calls == {"ioctl": 1, "copy_file_range": 1}  # each asked once, then remembered
    assert "5 by read/write" in (tmp_path / "distmgr.log").read_text()


def test_a_stop_keeps_what_was_verified_and_leaves_no_temp(
    tmp_path: Path, site_key: SigningKey
) -> None:
    files = {f"f{i}": random_bytes(2000 + i) for i in range(30)}
    package = make_package(site_key, files, 1, tmp_path / "library")
    seen = {"n": 0}

    def stop_after_ten() -> bool:
        seen["n"] += 1
        return seen["n"] > 10

    distributor = Distributor(
        DPStore(tmp_path / "dp"),
        {site_key.keyid: site_key.public},
        ComponentLog(tmp_path, "distmgr"),
        cancel=stop_after_ten,
        local_library=tmp_path / "library",
    )
    with pytest.raises(Cancelled):
        distributor.pull(package.manifest, [])
    held = [sha for sha in package.manifest.blobs() if distributor.store.has_blob(sha)]
    assert 0 < len(held) < 30
    assert all(_sha(distributor.store.blob_path(sha)) == sha for sha in held)
    assert _temps(tmp_path / "dp") == []


@pytest.mark.parametrize("copy_range", [True, False], ids=["copy_file_range", "read/write"])
def test_a_large_blob_is_copied_hashed_and_sent_to_disk_in_segments(
    tmp_path: Path, site_key: SigningKey, monkeypatch: pytest.MonkeyPatch, copy_range: bool
) -> None:
    """Above SEGMENT a blob's copy is hashed segment by segment (the copy's own bytes) and
    each segment's write-back started; the result is the same verified copy, and a library
    blob damaged deep inside is still refused."""
    monkeypatch.setattr(local_fill, "SEGMENT", 4096)
    if not copy_range:
        monkeypatch.delattr(local_fill.os, "copy_file_range")
    written_back: list[tuple[int, int]] = []

    def record(fd: int, offset: int, length: int) -> None:
        written_back.append((offset, length))

    monkeypatch.setattr(local_fill, "start_write_back", record)
    files = {"whole": random_bytes(4096 * 3), "odd": random_bytes(4096 * 2 + 1)}
    files["damaged"] = random_bytes(4096 * 5 + 17)
    package = make_package(site_key, files, 1, tmp_path / "library")
    damaged = hashlib.sha256(files["damaged"]).hexdigest()
    library_blob = blob_path(tmp_path / "library", damaged)
    os.chmod(library_blob, 0o644)
    with open(library_blob, "r+b") as handle:  # one byte in the fourth segment
        handle.seek(4096 * 3 + 5)
        handle.write(bytes([files["damaged"][4096 * 3 + 5] ^ 0x01]))
    distributor = _distributor(tmp_path, site_key, tmp_path / "library")
    with pytest.raises(DistributionFailed):
        distributor.pull(package.manifest, [])
    for name in ("whole", "odd"):
        sha = hashlib.sha256(files[name]).hexdigest()
        assert distributor.store.blob_path(sha).read_bytes() == files[name]
    assert list(distributor.store.missing_blobs(package.manifest)) == [damaged]
    log = (tmp_path / "distmgr.log").read_text()
    assert f"{damaged}" in log and "not taken: its bytes hash to" in log
    method = "copy_file_range" if copy_range else "read/write"
    assert f"2 by {method}" in log
    # every segment of the two good blobs (and of the damaged one) was sent to disk
    assert sorted(written_back).count((0, 4096)) == 3
    assert sum(length for _offset, length in written_back) == sum(map(len, files.values()))
    assert _temps(tmp_path / "dp") == []
