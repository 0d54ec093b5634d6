"""Write files so that a reader sees either nothing or the whole, durable file."""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO


def fsync_path(path: Path) -> None:
    """fsync by path: a file's bytes, or a folder's entries (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _libc(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except (AttributeError, OSError):
        return None


_SYNCFS = _libc("syncfs")
_SYNC_FILE_RANGE = _libc("sync_file_range")
if _SYNC_FILE_RANGE is not None:
    _SYNC_FILE_RANGE.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start write-back of the range's dirty pages


def start_write_back(fd: int, offset: int, length: int) -> None:
    """Start writing a range of `fd` to disk without waiting for it (sync_file_range), so
    that the fsync or syncfs that must come later finds little left to write. Not a
    durability promise: where the call does not exist or fails, nothing happens."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def sync_file_system(folder: Path) -> None:
    """Make every written byte on `folder`'s file system durable with one syncfs(2): a
    burst of small files costs one journal commit instead of one fsync each (os.sync where
    syncfs does not exist)."""
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:  # type: ignore[operator]
            raise OSError(ctypes.get_errno(), f"syncfs of {folder} failed")
    finally:
        os.close(fd)


def process_umask() -> int:
    """This process's umask, read without changing it (os.umask would, for every thread).

    A process that set umask 077 (the site server) gets 0600 files from `write_atomic`.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a temp file beside `path`; on success fsync it and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~process_umask())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_all(handle: IO[Any], chunk: memoryview) -> None:
    """Write every byte: a short write (a filling disk) must not leave less than was hashed."""
    while chunk:
        chunk = chunk[handle.write(chunk) :]


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(path, mode) as handle:
        handle.write(data)
