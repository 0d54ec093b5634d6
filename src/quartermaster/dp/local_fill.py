"""Fill a DP store from a content library folder on the same host (the embedded DP).

The site's own DP runs in the site process and, when the library is a local folder, on the
same disk. Fetching each blob from the site's `/library` route over HTTP reads it back from
disk (the library writes with O_DIRECT), copies it through a socket and writes it again.
Here each blob is instead copied file to file, in the cheapest way the file systems allow:

1. a reflink (`FICLONE`): the copy shares the library's extents until either side is
   written (copy on write), so no data is written at all;
2. `os.copy_file_range`: the kernel copies, with no trip through this process;
3. plain reads and writes (another file system, or a kernel without either).

**Not a hard link**, although it would cost even less. A hard link is the library's inode
itself, not a copy: bytes damaged in place on either side (a bad write, a disk error, an
admin's editor) would be damaged on both, and the DP's repair (validation removes the bad
blob and the next pull fetches it again) would link the same damaged inode back, over and
over, instead of healing the DP; worse, a write into the DP's blob would corrupt the
library every DP is filled from. It would also tie the two lifetimes: the library's sweep
would no longer free the space of a blob the DP still names, the DP's used bytes would
count space the library owns, and a chmod or chown of one would change the other. A
reflink gives the same saving where the file system has it (Btrfs, XFS, bcachefs) and
stays an independent file.

Whatever the method, the DP invariant holds: a blob is copied to a temp beside its final
name, the temp's own bytes (what the store will hold, not the library's) are hashed and
must match the name and the manifest's size, the batch is made durable with one syncfs, and
only then renamed into place (a second syncfs makes the names durable). A library blob that
does not match is not taken; the caller asks its other sources, and if they serve the same
bad bytes the version fails with the reason instead of being installed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from quartermaster.core.durable_files import start_write_back, sync_file_system
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.pack_transfer import batches
from quartermaster.core.store_layout import blob_path

FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
TEMP_PREFIX = ".tmp-"  # a DP's sweep (DPStore.remove_stale_temps) removes those a kill left
BLOB_MODE = 0o444
WORKERS = 4  # file creations wait on the journal, not the CPU: a few overlap
BATCH_BYTES = 256 * 1024 * 1024  # bytes made durable by one pair of syncfs
BATCH_BLOBS = 10_000
READ_CHUNK = 4 * 1024 * 1024
# A blob larger than this is copied in segments of this size, each hashed and sent to disk
# while the next is copied (`_copy_in_segments`).
SEGMENT = 64 * 1024 * 1024
# errors that say "this way of copying does not work here", not "this blob is bad"
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
_UNSUPPORTED.add(getattr(errno, "ENOTSUP", errno.EOPNOTSUPP))

Destination = Callable[[str], Path]


@dataclass
class LocalFillResult:
    stored: dict[str, int] = field(default_factory=dict)  # sha256 -> bytes, now in the store
    absent: list[str] = field(default_factory=list)  # not in the library (swept, or never)
    refused: dict[str, str] = field(default_factory=dict)  # sha256 -> why it was not taken
    methods: Counter[str] = field(default_factory=Counter)  # copies by method

    @property
    def bytes_copied(self) -> int:
        return sum(self.stored.values())

    def log_lines(self, library: Path, asked: int) -> list[str]:
        how = ", ".join(f"{n} by {m}" for m, n in sorted(self.methods.items())) or "none copied"
        lines = [
            f"from the local library {library}: {len(self.stored)} of {asked} blobs, "
            f"{self.bytes_copied} bytes ({how}), SHA-256 verified"
            + (f"; {len(self.absent)} not there" if self.absent else "")
        ]
        lines.extend(
            f"blob {sha} in the local library {library} not taken: {why}; "
            "asked of the other sources"
            for sha, why in self.refused.items()
        )
        return lines


class _Refused(Exception):  # noqa: N818 - one blob's copy is not taken; not an error of the fill
    pass


class LocalLibrary:
    """A content library folder (`content/sha256/<2>/<64>`) this DP may copy blobs from.

    One per store; it remembers which copy method failed as unsupported, so each blob
    costs one attempt, not three."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clone = True
        self._copy_range = hasattr(os, "copy_file_range")
        self._local = threading.local()

    def fill(
        self,
        wanted: dict[str, int],
        destination: Destination,
        on_blob: Callable[[str, int], None] | None = None,
    ) -> LocalFillResult:
        """Copy `wanted` (sha256 -> manifest size) into place at `destination(sha256)`, each
        verified, in durable batches. `on_blob` may raise to stop: blobs already verified are
        still made durable and published, the others' temps removed."""
        result = LocalFillResult()
        for batch in batches(wanted, None, BATCH_BLOBS, BATCH_BYTES):
            self._fill_batch(batch, destination, on_blob, result)
        return result

    def _fill_batch(
        self,
        batch: dict[str, int],
        destination: Destination,
        on_blob: Callable[[str, int], None] | None,
        result: LocalFillResult,
    ) -> None:
        done: list[tuple[Path, Path, str, int]] = []  # temp, dest, sha256, size
        folders: set[Path] = set()
        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="local-fill")
        futures: list[tuple[str, int, Path, Path, Future[str | None]]] = []
        try:
            for sha256, size in batch.items():
                if not is_sha256_hex(sha256):  # names come from a signed manifest; still check
                    result.refused[sha256] = "not a SHA-256 name"
                    continue
                dest = destination(sha256)
                if dest.parent not in folders:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(dest.parent)
                temp = dest.with_name(f"{TEMP_PREFIX}{dest.name}.local")
                source = blob_path(self.root, sha256)
                futures.append(
                    (sha256, size, temp, dest, pool.submit(self._copy, source, temp, sha256, size))
                )
            for sha256, size, temp, dest, future in futures:
                try:
                    method = future.result()
                except _Refused as exc:
                    result.refused[sha256] = str(exc)
                    continue
                if method is None:
                    result.absent.append(sha256)
                    continue
                done.append((temp, dest, sha256, size))
                result.methods[method] += 1
                if on_blob is not None:
                    on_blob(sha256, size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            published = {sha for _t, _d, sha, _s in done}
            for sha256, _size, temp, _dest, future in futures:
                if sha256 not in published and future.done() and not future.cancelled():
                    temp.unlink(missing_ok=True)
            _publish(done, result)

    def _copy(self, source: Path, temp: Path, sha256: str, size: int) -> str | None:
        """Copy one blob to `temp` and verify the temp's bytes; the method used, or None
        when the library does not hold it. Raises _Refused (temp removed) on a mismatch."""
        try:
            src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            held = os.fstat(src).st_size
            if held != size:
                raise _Refused(f"it holds {held} bytes, the manifest says {size}")
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            dst = os.open(temp, flags, BLOB_MODE)
            try:
                if size <= SEGMENT:
                    method = self._copy_bytes(src, dst, size)
                    actual = self._hash(dst, size)
                elif self._cloned(src, dst):
                    method, actual = "reflink", self._hash(dst, size)
                else:
                    method, actual = self._copy_in_segments(src, dst, size)
            except BaseException:
                os.close(dst)
                temp.unlink(missing_ok=True)
                raise
            os.close(dst)
            if actual != sha256:
                temp.unlink(missing_ok=True)
                raise _Refused(f"its bytes hash to {actual}")
            return method
        finally:
            os.close(src)

    def _cloned(self, src: int, dst: int) -> bool:
        """A reflink of `src` made at `dst`; False where the file system cannot."""
        if not self._clone:
            return False
        try:
            fcntl.ioctl(dst, FICLONE, src)
            return True
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED and exc.errno != errno.EPERM:
                raise
            self._clone = False  # this file system (pair) cannot: do not ask again
            return False

    def _copy_bytes(self, src: int, dst: int, size: int) -> str:
        if size == 0:
            return "copy_file_range" if self._copy_range else "read/write"
        if self._cloned(src, dst):
            return "reflink"
        return self._copy_part(src, dst, 0, size)

    def _copy_in_segments(self, src: int, dst: int, size: int) -> tuple[str, str]:
        """Copy a large blob (no reflink here) segment by segment while a second thread
        hashes the copy's previous segment and starts its write-back: reading the library,
        hashing and writing the DP's copy overlap instead of following one another, and the
        batch's syncfs finds little left to write. A 1 GiB blob that the library wrote with
        O_DIRECT (not in the page cache): 2.5-3.4 s one after the other, 1.4-1.6 s so."""
        digest = hashlib.sha256()
        method = "read/write"
        with ThreadPoolExecutor(1, thread_name_prefix="local-fill-hash") as hasher:
            hashed: list[Future[None]] = []
            for start in range(0, size, SEGMENT):
                length = min(SEGMENT, size - start)
                method = self._copy_part(src, dst, start, length)
                hashed.append(hasher.submit(self._hash_segment, dst, start, length, digest))
            for future in hashed:
                future.result()
        held = os.fstat(dst).st_size
        if held != size:
            raise _Refused(f"the copy holds {held} bytes, the manifest says {size}")
        return method, digest.hexdigest()

    def _copy_part(self, src: int, dst: int, start: int, length: int) -> str:
        """Copy bytes [start, start + length) with copy_file_range, else reads and writes."""
        if self._copy_range:
            try:
                self._copy_range_all(src, dst, length, start)
                return "copy_file_range"
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                self._copy_range = False
        self._read_write(src, dst, length, start)
        return "read/write"

    def _hash_segment(self, fd: int, start: int, length: int, digest: hashlib._Hash) -> None:
        view = memoryview(self._buffer())
        offset, end = start, start + length
        while offset < end:
            n = os.preadv(fd, [view[: min(len(view), end - offset)]], offset)
            if n == 0:
                raise _Refused(f"the copy ended after {offset} bytes")
            digest.update(view[:n])
            offset += n
        start_write_back(fd, start, length)

    @staticmethod
    def _copy_range_all(src: int, dst: int, size: int, start: int) -> None:
        copied = 0
        while copied < size:
            at = start + copied
            n = os.copy_file_range(src, dst, size - copied, at, at)
            if n == 0:
                raise _Refused(f"it ended after {at} bytes")
            copied += n

    def _read_write(self, src: int, dst: int, size: int, start: int) -> None:
        view = memoryview(self._buffer())
        copied = 0
        while copied < size:
            at = start + copied
            n = os.preadv(src, [view[: min(READ_CHUNK, size - copied)]], at)
            if n == 0:
                raise _Refused(f"it ended after {at} bytes")
            written = 0
            while written < n:
                written += os.pwrite(dst, view[written:n], at + written)
            copied += n

    def _hash(self, fd: int, size: int) -> str:
        """SHA-256 of the first `size` bytes of `fd`, which must hold exactly that many."""
        if size <= READ_CHUNK:
            data = os.pread(fd, size + 1, 0)
            if len(data) != size:
                raise _Refused(f"the copy holds {len(data)} bytes, the manifest says {size}")
            return hashlib.sha256(data).hexdigest()
        view = memoryview(self._buffer())
        digest = hashlib.sha256()
        offset = 0
        while n := os.preadv(fd, [view], offset):
            digest.update(view[:n])
            offset += n
        if offset != size:
            raise _Refused(f"the copy holds {offset} bytes, the manifest says {size}")
        return digest.hexdigest()

    def _buffer(self) -> bytearray:
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = bytearray(READ_CHUNK)
        return buffer


def _publish(done: list[tuple[Path, Path, str, int]], result: LocalFillResult) -> None:
    """One syncfs for the verified temps' bytes, the renames, one syncfs for the names."""
    if not done:
        return
    sync_file_system(done[0][1].parent)
    for temp, dest, sha256, size in done:
        os.replace(temp, dest)
        result.stored[sha256] = size
    sync_file_system(done[0][1].parent)
