"""Work folders: fresh for each run, exact files and modes, never half-built under their name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quartermaster.client.cache import ContentCache
from quartermaster.client.work_layout import lay_out, remove_tree
from quartermaster.core.errors import HashMismatch
from quartermaster.core.signing import SigningKey

from .conftest import Package, make_package


def cached(
    tmp_path: Path, files: dict[str, bytes], modes: dict[str, int] | None = None, skip: str = ""
) -> tuple[Package, ContentCache]:
    package = make_package(SigningKey.generate(), files, modes=modes)
    cache = ContentCache(tmp_path / "cache", 10**9)
    for entry in package.manifest.files:
        if entry.path != skip:
            path = cache.blob_path(entry.sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[entry.path])
    return package, cache


def test_files_are_laid_out_with_their_manifest_modes(tmp_path: Path) -> None:
    package, cache = cached(
        tmp_path,
        {"bin/run.sh": b"#!/bin/sh\n", "readme.txt": b"hi"},
        modes={"bin/run.sh": 0o755, "readme.txt": 0o600},
    )
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    assert (folder / "readme.txt").read_bytes() == b"hi"
    # linked to the cache (this file system cannot clone), with the manifest's modes
    assert os.stat(folder / "bin" / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(folder / "readme.txt").st_mode & 0o777 == 0o600


def test_files_are_linked_from_the_cache_not_copied(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.bin": b"x" * 100_000, "b.bin": b"y"})
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    for name in ("a.bin", "b.bin"):
        laid, blob = os.stat(folder / name), os.stat(cache.blob_path(package.sha_of(name)))
        assert (laid.st_dev, laid.st_ino) == (blob.st_dev, blob.st_ino)
        assert laid.st_mode & 0o022 == 0  # writable by no other account


def test_one_blob_under_two_modes_is_linked_once_and_copied_once(tmp_path: Path) -> None:
    package, cache = cached(
        tmp_path, {"run.sh": b"same", "copy.txt": b"same"}, modes={"run.sh": 0o755}
    )
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    modes = {n: os.stat(folder / n).st_mode & 0o777 for n in ("copy.txt", "run.sh")}
    assert modes == {"copy.txt": 0o644, "run.sh": 0o755}  # copy.txt first: the link
    assert (folder / "run.sh").read_bytes() == b"same"


def test_each_run_starts_from_a_fresh_folder(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.txt": b"a"})
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    (folder / "left-by-program.log").write_text("old")
    lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]
    assert (folder / "a.txt").read_bytes() == b"a"


def test_a_program_that_edits_its_linked_file_does_not_corrupt_the_next_run(
    tmp_path: Path,
) -> None:
    """Root writes through the missing write bit, into the cache's inode: the next layout
    hashes the blob (it was not downloaded just now), refuses it, and once it is fetched
    again lays out the published bytes."""
    package, cache = cached(tmp_path, {"a.txt": b"a"})
    sha = package.sha_of("a.txt")
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000", verified={sha})
    os.chmod(folder / "a.txt", 0o644)  # what a program run as root may do, or simply:
    with open(folder / "a.txt", "r+b") as handle:
        handle.write(b"edited by the program")
    with pytest.raises(HashMismatch) as refused:
        lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    assert refused.value.expected == sha
    cache.remove(sha)  # what deployment_run does, then obtain fetches it again:
    cache.blob_path(sha).write_bytes(b"a")
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000", verified={sha})
    assert (folder / "a.txt").read_bytes() == b"a"


def test_only_blobs_downloaded_just_now_skip_the_hash(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.txt": b"a", "b.txt": b"b"})
    cache.blob_path(package.sha_of("b.txt")).write_bytes(b"rotten")
    with pytest.raises(HashMismatch):  # b.txt is not in `verified`: hashed, refused
        lay_out(package.manifest, cache, tmp_path / "work", "QM120000", {package.sha_of("a.txt")})


def test_a_failed_layout_leaves_no_folder_under_the_deployment_name(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.txt": b"a", "b.txt": b"b"}, skip="b.txt")
    with pytest.raises(FileNotFoundError):
        lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    assert not (tmp_path / "work" / "QM120000").exists()


def test_a_damaged_cached_blob_is_detected_while_copying(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.txt": b"a"})
    cache.blob_path(package.sha_of("a.txt")).write_bytes(b"rotten")
    with pytest.raises(HashMismatch):
        lay_out(package.manifest, cache, tmp_path / "work", "QM120000")


def test_a_folder_a_program_made_read_only_can_still_be_replaced(tmp_path: Path) -> None:
    locked = tmp_path / "work" / "QM120000" / "locked"
    locked.mkdir(parents=True)
    (locked / "file").write_text("x")
    locked.chmod(0o500)
    remove_tree(tmp_path / "work" / "QM120000")
    assert not (tmp_path / "work" / "QM120000").exists()
