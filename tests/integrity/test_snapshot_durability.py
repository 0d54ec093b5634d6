"""Content library snapshots: right bytes under the right names, nothing half-written visible.

A snapshot hashes files on several threads, stages new content in temp files and publishes
it in one batch (fsync all, rename all, fsync each folder). These tests check the result
byte for byte, and make the batch fail where a disk can fail it (an fsync or a rename
reporting an I/O error) to check that no blob is ever visible unless whole and durable.
Each test runs on every way temps are written: O_DIRECT, through the page cache (a platform
without O_DIRECT), and the two fall-backs, a file system that refuses O_DIRECT and a device
whose blocks are larger than the writes' alignment.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quartermaster.core.durable_files import sync_file_system
from quartermaster.site import content_library
from quartermaster.site.content_library import WHOLE, ContentLibrary

BIG = os.urandom(WHOLE + 4321)  # larger than a worker's buffer: hashed while copied


def _library(root: Path) -> ContentLibrary:
    """A library that stores BIG whole: these tests are about whole-file blobs written with
    O_DIRECT (a site may raise the chunk threshold); chunked files: tests/chunks/."""
    return ContentLibrary(root, chunk_threshold=1 << 62)


def _einval(*_args: Any) -> Any:
    raise OSError(errno.EINVAL, "Invalid argument")


@pytest.fixture(autouse=True, params=["direct", "buffered", "refused", "large-blocks"])
def temp_writes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_open, real_pwrite = os.open, os.pwrite
    if request.param == "buffered":
        monkeypatch.setattr(content_library, "O_DIRECT", 0)
    elif request.param == "refused":
        monkeypatch.setattr(
            os,
            "open",
            lambda path, flags, *rest, **named: (
                _einval() if flags & os.O_DIRECT else real_open(path, flags, *rest, **named)
            ),
        )
    elif request.param == "large-blocks":
        monkeypatch.setattr(
            os,
            "pwrite",
            lambda fd, data, offset: (
                _einval()
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
                else real_pwrite(fd, data, offset)
            ),
        )
    used: set[bool] = set()
    real_exit = content_library._TempWriter.__exit__

    def exit_(writer: content_library._TempWriter, *failed: object) -> None:
        if writer.size >= content_library.BLOCK:  # smaller: through the page cache always
            used.add(writer.went_direct)
        real_exit(writer, *failed)

    monkeypatch.setattr(content_library._TempWriter, "__exit__", exit_)
    yield
    assert used == {request.param == "direct"}  # the way asked for is the way taken


def make_source(root: Path) -> dict[str, bytes]:
    files = {
        "install.sh": b"echo installing\n",
        "empty.txt": b"",
        "big/payload.bin": BIG,
        "copies/a.bin": b"same bytes\n" * 1000,
        "copies/b.bin": b"same bytes\n" * 1000,
        **{f"many/f{i:03d}.bin": os.urandom(1000 + i) for i in range(40)},
    }
    for relpath, data in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def library_blobs(library: Path) -> dict[str, bytes]:
    content = library / "content" / "sha256"
    return {p.name: p.read_bytes() for p in content.glob("??/*")} if content.is_dir() else {}


def leftovers(library: Path) -> list[Path]:
    return list((library / "tmp").iterdir()) if (library / "tmp").is_dir() else []


def test_a_snapshot_stores_each_content_once_under_its_hash(tmp_path: Path) -> None:
    files = make_source(tmp_path / "src")
    snapshot = _library(tmp_path / "lib").snapshot(tmp_path / "src")
    assert {e.path: e.sha256 for e in snapshot.files} == {
        p: hashlib.sha256(d).hexdigest() for p, d in files.items()
    }
    assert [e.path for e in snapshot.files] == sorted(files)
    assert {e.path: e.size for e in snapshot.files} == {p: len(d) for p, d in files.items()}
    blobs = library_blobs(tmp_path / "lib")
    assert all(hashlib.sha256(data).hexdigest() == name for name, data in blobs.items())
    assert len(blobs) == len(files) - 1  # the two copies are one blob
    assert snapshot.new_bytes == sum(len(d) for d in blobs.values())
    assert leftovers(tmp_path / "lib") == []


def test_an_unchanged_folder_writes_nothing(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    library = _library(tmp_path / "lib")
    first = library.snapshot(tmp_path / "src")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "lib" / "content").rglob("*")}
    again = library.snapshot(tmp_path / "src")
    assert again.new_bytes == 0 and again.files == first.files
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "lib" / "content").rglob("*")} == stamps
    assert leftovers(tmp_path / "lib") == []


def test_only_changed_content_is_new_in_the_next_snapshot(tmp_path: Path) -> None:
    make_source(tmp_path / "src")
    library = _library(tmp_path / "lib")
    library.snapshot(tmp_path / "src")
    (tmp_path / "src" / "many" / "f007.bin").write_bytes(b"changed\n")
    again = library.snapshot(tmp_path / "src")
    assert again.new_bytes == len(b"changed\n")


def failing_on_call(number: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """`real`, except that call `number` (1-based) fails as a disk reporting EIO would."""
    calls = {"n": 0}

    def call(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == number:
            raise OSError(errno.EIO, "Input/output error")
        return real(*args)

    return call


def test_an_fsync_failure_leaves_no_blob_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_source(tmp_path / "src")
    monkeypatch.setattr(content_library, "SYNC_ONE_BY_ONE", 1000)  # an fsync per temp
    monkeypatch.setattr(os, "fsync", failing_on_call(5, os.fsync))
    with pytest.raises(OSError):
        _library(tmp_path / "lib").snapshot(tmp_path / "src")
    assert library_blobs(tmp_path / "lib") == {}
    assert leftovers(tmp_path / "lib") == []


def test_many_files_are_made_durable_by_syncfs_and_its_failure_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above SYNC_ONE_BY_ONE new blobs, one syncfs replaces the fsyncs: no fsync per temp,
    and a syncfs that fails (EIO) leaves no blob visible and no temp behind."""
    files = make_source(tmp_path / "src")
    fsyncs = {"n": 0}
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        fsyncs["n"] += 1
        real_fsync(fd)

    monkeypatch.setattr(content_library, "SYNC_ONE_BY_ONE", 8)
    monkeypatch.setattr(os, "fsync", counting)
    failing = failing_on_call(1, content_library.sync_file_system)
    monkeypatch.setattr(content_library, "sync_file_system", failing)
    with pytest.raises(OSError):
        _library(tmp_path / "lib").snapshot(tmp_path / "src")
    assert library_blobs(tmp_path / "lib") == {}
    assert leftovers(tmp_path / "lib") == []
    monkeypatch.setattr(content_library, "sync_file_system", sync_file_system)
    _library(tmp_path / "lib").snapshot(tmp_path / "src")
    assert len(library_blobs(tmp_path / "lib")) == len(files) - 1  # two copies: one blob
    assert fsyncs["n"] == 0


def test_a_rename_failure_leaves_only_whole_blobs_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_source(tmp_path / "src")
    monkeypatch.setattr(content_library.os, "replace", failing_on_call(10, os.replace))
    with pytest.raises(OSError):
        _library(tmp_path / "lib").snapshot(tmp_path / "src")
    blobs = library_blobs(tmp_path / "lib")
    assert len(blobs) == 9  # those renamed before the failure, each whole
    assert all(hashlib.sha256(data).hexdigest() == name for name, data in blobs.items())
    assert set(blobs.values()) <= set(files.values())
    assert leftovers(tmp_path / "lib") == []
    monkeypatch.undo()
    again = _library(tmp_path / "lib").snapshot(tmp_path / "src")  # a retry completes
    assert len(library_blobs(tmp_path / "lib")) == len(files) - 1
    assert again.new_bytes == sum(len(d) for d in library_blobs(tmp_path / "lib").values()) - sum(
        len(d) for d in blobs.values()
    )
