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
    assert os.stat(folder / "bin" / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(folder / "readme.txt").st_mode & 0o777 == 0o600


def test_each_run_starts_from_a_fresh_folder(tmp_path: Path) -> None:
    package, cache = cached(tmp_path, {"a.txt": b"a"})
    folder = lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    (folder / "left-by-program.log").write_text("old")
    (folder / "a.txt").write_text("edited by the program")
    lay_out(package.manifest, cache, tmp_path / "work", "QM120000")
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt"]
    assert (folder / "a.txt").read_bytes() == b"a"


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
