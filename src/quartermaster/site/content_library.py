"""The content library: the only place that ever reads a package's live source folder.

A snapshot walks the source once and stores each distinct content once under its SHA-256.
Everything downstream (DPs, clients) receives bytes by hash from here, which is what makes
KB 907979 impossible.

How a snapshot spends its time: files are hashed on several threads (`hashlib`, file reads
and writes release the GIL; `openssl dgst` is single-threaded). A file that fits in a
worker's buffer is read once and hashed, and written only if the library lacks its content,
so an unchanged file of a `package update` costs a read and nothing else. A larger file is
hashed while being copied (the bytes stored are the bytes hashed, never a second read) and
the copy is dropped if the library already had it. New content goes to temp files: whole
blocks written with O_DIRECT from the workers' page-aligned buffers (the bytes must reach
the disk before the snapshot returns anyway, and going through the page cache would cost a
fresh cache page per 4 KiB and write-back competing with the hashing), the last partial
block, and all of a file smaller than a block, through the page cache (no padding to cut
off). Then all temps are made durable (an fsync each, or one syncfs for many), renamed into
place, and the blob folders made durable (an fsync each, or one syncfs). Where the file
system refuses O_DIRECT, temps are written through the page cache and the write-back of a
large one is started at once.

What is guaranteed: nothing half-written is ever visible (a blob appears under its name only
after its bytes were fsynced), and `snapshot` returns only after every blob the version
needs is durable, so the version row the caller commits afterwards never names content a
crash could lose. A snapshot that fails midway removes its temp files and makes no version.

Where blobs and manifests are kept is a `LibraryStorage`: a folder (`FolderStorage`, the
default, below) or an S3-compatible bucket (site/library_bucket.py). Temps and the lock
that orders snapshots and sweeps stay in the local `root` either way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from quartermaster.core.canonical import canonical_json
from quartermaster.core.chunking import CHUNK_THRESHOLD, MAXIMUM
from quartermaster.core.durable_files import fsync_path, sync_file_system, write_atomic
from quartermaster.core.errors import InvalidInput, SourceError
from quartermaster.core.hashing import CHUNK
from quartermaster.core.manifest import (
    DEFAULT_PLATFORM,
    LINK_PLATFORMS,
    ChunkEntry,
    FileEntry,
    LinkEntry,
    check_outside_links,
    check_platform,
    collision_key,
    link_check,
    relpath_problems,
)
from quartermaster.core.store_layout import (
    CONTENT_FOLDER,
    blob_path,
    blob_relpath,
    manifest_path,
)
from quartermaster.site.content_chunks import store_chunked
from quartermaster.site.source_roots import home_kind

WHOLE = 2 * CHUNK  # a file up to this size is read whole, then written only if new
MAX_WORKERS = 12
CHUNK_WRITERS = 8  # chunk writes in flight at once, over all workers (see _keep_chunk)
BATCH = 16  # files a worker takes at a time: one future per file cost the main thread ~0.1 ms
SYNC_ONE_BY_ONE = 32  # above this many files or folders, one syncfs instead of fsyncs
BLOCK = 4096  # O_DIRECT writes whole blocks from block-aligned memory (a page is aligned)
O_DIRECT = getattr(os, "O_DIRECT", 0)  # 0 where the platform has none: buffered writes
LOCK_FILE = "gc.lock"
DEAD_TEMP_AGE = 3600  # seconds untouched before a temp counts as a dead snapshot's


MAX_LISTED = 100  # offenders named in one refusal; the rest are counted


@dataclass
class Snapshot:
    files: list[FileEntry]
    new_bytes: int  # bytes of content the library did not hold before
    links: list[LinkEntry] = field(default_factory=list)  # kept as links (linux, macos)
    # links to what is not in the package, left out of it (outside_links "skip")
    skipped_links: list[LinkEntry] = field(default_factory=list)


@dataclass
class Sweep:
    """What one garbage collection of the library removed."""

    blobs: int = 0
    bytes: int = 0
    manifests: int = 0
    temps: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "blobs": self.blobs,
            "bytes": self.bytes,
            "manifests": self.manifests,
            "temps": self.temps,
        }


@dataclass
class _Staged:
    """New content written to a temp file, not yet durable nor visible."""

    tmp: Path
    sha256: str
    size: int


Staged = _Staged  # what a LibraryStorage publishes


class LibraryStorage(Protocol):
    """Where the library keeps blobs (`content/sha256/<2>/<64>`) and signed manifests
    (`manifests/<package hash>.json`)."""

    def describe(self) -> str:
        """Where, for people (a path or an s3:// URL; never a secret)."""
        ...

    def refresh(self) -> None:
        """Read again what is held (a snapshot starts with this, under the lock)."""
        ...

    def has_blob(self, sha256: str) -> bool: ...

    def publish(self, pool: ThreadPoolExecutor, staged: list[Staged], used: set[str]) -> None:
        """Make each staged temp its blob, durable, before returning; `used` are all the
        blobs the new version names (some a concurrent snapshot may just have stored)."""
        ...

    def write_manifest(self, package_hash: str, data: bytes) -> None: ...

    def blob_names(self) -> list[str]: ...

    def manifest_names(self) -> list[str]:
        """Package hashes whose manifest is held."""
        ...

    def delete_blob(self, sha256: str) -> int:
        """Its size, or 0 if it was gone already."""
        ...

    def delete_manifest(self, package_hash: str) -> None: ...


class FolderStorage:
    """The library in a local folder: each blob is a file, renamed into place after fsync."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def refresh(self) -> None:
        """A folder is read on every look; nothing to refresh."""

    def has_blob(self, sha256: str) -> bool:
        return os.path.isfile(f"{self.root}/{blob_relpath(sha256)}")  # (no pathlib: per file)

    def publish(self, pool: ThreadPoolExecutor, staged: list[Staged], used: set[str]) -> None:
        """Make every staged temp durable, rename each into place, then make the folders'
        entries durable.

        Up to SYNC_ONE_BY_ONE files (or folders) are fsynced one by one; above that one
        syncfs(2) of the library's file system does it: on ext4 each fsync is a journal
        commit, so a version of 10,000 small files cost 10,000 commits and now costs one
        (it also flushes other writers' dirty pages of that file system, which a burst of
        thousands of fsyncs would have waited behind anyway).

        The folders of every blob in `used` are fsynced, not only those of new blobs: a blob
        found already held may have been renamed in just now by a concurrent snapshot.
        """
        if len(staged) > SYNC_ONE_BY_ONE:
            sync_file_system(staged[0].tmp)
        else:
            list(pool.map(lambda item: fsync_path(item.tmp), staged))
        # paths as strings, each shard folder made once: for 10,000 blobs, pathlib and a
        # mkdir per blob cost more than the renames
        content = f"{self.root}/{CONTENT_FOLDER}"
        made: set[str] = set()
        for item in staged:
            shard = item.sha256[:2]
            if shard not in made:
                os.makedirs(f"{content}/{shard}", exist_ok=True)
                made.add(shard)
            os.replace(item.tmp, f"{content}/{shard}/{item.sha256}")
        folders = sorted({sha[:2] for sha in used})
        if len(folders) > SYNC_ONE_BY_ONE:
            sync_file_system(self.root)
        else:
            for shard in folders:
                fsync_path(Path(content, shard))

    def write_manifest(self, package_hash: str, data: bytes) -> None:
        write_atomic(manifest_path(self.root, package_hash), data)

    def blob_names(self) -> list[str]:
        content = self.root / "content" / "sha256"
        shards = sorted(content.iterdir()) if content.is_dir() else []
        return [path.name for shard in shards if shard.is_dir() for path in shard.iterdir()]

    def manifest_names(self) -> list[str]:
        folder = self.root / "manifests"
        paths = folder.iterdir() if folder.is_dir() else []
        return [path.name.removesuffix(".json") for path in paths]

    def delete_blob(self, sha256: str) -> int:
        return _unlink(blob_path(self.root, sha256))

    def delete_manifest(self, package_hash: str) -> None:
        _unlink(manifest_path(self.root, package_hash))


Progress = Callable[[int, int, int, int], None]


def _workers() -> int:
    """More threads than cores: a worker on small files mostly waits for the disk (creating
    a file, an O_DIRECT write), not for a core. 10,000 small files on 2 busy cores: 3
    workers 11.2-15.3 s, 12 workers 8.1-10.3 s."""
    return max(1, min(MAX_WORKERS, 6 * (os.cpu_count() or 1)))


def check_chunk_threshold(value: object) -> int:
    """Files larger than `value` bytes are stored as chunks (config.json's chunk_threshold)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 2 * MAXIMUM:
        raise InvalidInput(
            f"chunk_threshold {value!r} is not a number of bytes of at least {2 * MAXIMUM}",
            f"set chunk_threshold in the site's config.json to a whole number of bytes "
            f"(default {CHUNK_THRESHOLD}), or remove it",
        )
    return value


class ContentLibrary:
    def __init__(
        self,
        root: Path,
        storage: LibraryStorage | None = None,
        chunk_threshold: int = CHUNK_THRESHOLD,
    ) -> None:
        self.root = root  # temps and the lock; the blobs too unless `storage` says otherwise
        self.tmp = root / "tmp"
        self.storage: LibraryStorage = storage or FolderStorage(root)
        self.chunk_threshold = check_chunk_threshold(chunk_threshold)

    def blob_path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def has_blob(self, sha256: str) -> bool:
        return self.storage.has_blob(sha256)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) from the start of a snapshot until its version is committed.

        Any number of snapshots hold it at once; `sweep` takes it exclusively, so a sweep never
        runs between a snapshot storing (or finding) a blob and its version naming that blob.
        """
        with self._lock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, kind)  # released when the file closes
            yield

    def sweep(self, used_blobs: set[str], used_manifests: set[str]) -> Sweep:
        """Delete every blob and manifest not named, and temps of snapshots that died.

        `used_*` must be read from the database inside `sweeping()`, after it was taken.
        """
        swept = Sweep()
        for name in self.storage.blob_names():
            if name not in used_blobs:
                swept.bytes += self.storage.delete_blob(name)
                swept.blobs += 1
        for package_hash in self.storage.manifest_names():
            if package_hash not in used_manifests:
                self.storage.delete_manifest(package_hash)
                swept.manifests += 1
        old = time.time() - DEAD_TEMP_AGE  # a job may make its folder before it locks
        for path in self.tmp.iterdir() if self.tmp.is_dir() else []:
            if path.lstat().st_mtime < old:
                _unlink(path)
                swept.temps += 1
        return swept

    @contextlib.contextmanager
    def sweeping(self) -> Iterator[None]:
        """Exclusive: waits for running snapshots to commit, and holds new ones back."""
        with self._lock(fcntl.LOCK_EX):
            yield

    def write_manifest(self, package_hash: str, envelope: dict[str, Any]) -> None:
        """Keep each signed manifest beside its blobs, so the library is a complete store."""
        self.storage.write_manifest(package_hash, canonical_json(envelope))

    def snapshot(
        self,
        source: Path,
        guard: Callable[[Path], None] | None = None,
        platform: str = DEFAULT_PLATFORM,
        progress: Progress | None = None,
        tmp: Path | None = None,
        outside_links: str = "refuse",
    ) -> Snapshot:
        """Hash and store every file of `source`; refuse anything a client of `platform`
        could not hold, and anything but plain files and (linux, macos) links inside it.

        `guard` sees the real path of the folder that was opened (links resolved) and may
        refuse it (the site's source roots). Every file is then opened relative to that
        folder's handle without following links, so no later swap of a folder or file for
        a link can make the snapshot read anything outside it. Returns once every blob the
        files need is durable in the library.

        `progress` hears (files done, bytes done, files in all, bytes in all) after each
        file, from the worker threads; it may raise to stop the snapshot. `tmp` is where
        temps go (a job's own folder, emptied when the job resumes after a crash); by
        default the library's tmp/. `outside_links` (core/manifest.py) says whether a link
        to outside the folder refuses it or is left out.
        """
        source = check_source_folder(source)
        check_platform(platform)
        root_fd = _open_folder(str(source), None, source)
        try:
            if guard is not None:
                guard(_real_path(root_fd, source))
            # the whole tree is checked first
            found, links, skipped = walk_source_and_links(root_fd, source, platform, outside_links)
            self.storage.refresh()
            run = _SnapshotRun(self, root_fd, tmp or self.tmp, progress, found)
            run.tmp.mkdir(parents=True, exist_ok=True)
            try:
                with ThreadPoolExecutor(_workers(), thread_name_prefix="snapshot") as pool:
                    try:
                        batches = [found[i : i + BATCH] for i in range(0, len(found), BATCH)]
                        files = [e for batch in pool.map(run.store_files, batches) for e in batch]
                        run.publish(pool, {sha for entry in files for sha in entry.blobs()})
                    except BaseException:
                        pool.shutdown(cancel_futures=True)  # no more files once one failed
                        raise
            finally:
                run.close()
                run.discard_temps()
        finally:
            os.close(root_fd)
        return Snapshot(files, run.new_bytes, links, skipped)


class _SnapshotRun:
    """The state of one snapshot shared by its worker threads."""

    def __init__(
        self,
        library: ContentLibrary,
        root_fd: int,
        tmp: Path | None = None,
        progress: Progress | None = None,
        found: list[Found] | None = None,
    ) -> None:
        self.library = library
        self.root_fd = root_fd
        self.tmp = tmp or library.tmp
        self.buffers: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self.chunk_writers: ThreadPoolExecutor | None = None  # made at the first new chunk
        self.chunk_slots = threading.BoundedSemaphore(CHUNK_WRITERS)
        self.chunk_buffers: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.staged: dict[str, _Staged] = {}  # sha256 -> new content, one temp per content
        self.new_bytes = 0
        self.progress = progress
        self.files_done = self.bytes_done = 0
        self.files_total = len(found or ())
        self.bytes_total = sum(item.size for item in found or ())

    def _buffer(self) -> mmap.mmap:
        try:
            return self.buffers.get_nowait()
        except queue.Empty:
            return mmap.mmap(-1, WHOLE)  # page-aligned, as O_DIRECT needs

    def store_files(self, items: list[Found]) -> list[FileEntry]:
        return [self.store_file(item) for item in items]

    def store_file(self, item: Found) -> FileEntry:
        relpath = item.relpath
        buffer = self._buffer()
        try:
            fd = _open_source_file(self.root_fd, relpath)
            with open(fd, "rb", buffering=0) as src:
                before = os.fstat(fd)
                if (
                    not stat.S_ISREG(before.st_mode)
                    or (before.st_dev, before.st_ino) != (item.dev, item.ino)
                    or before.st_nlink != 1
                ):
                    raise _changed(relpath)
                sha, size, chunks = self._read_and_stage(src, memoryview(buffer), before.st_size)
                after = os.fstat(fd)
            if (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, size):
                raise _changed(relpath)
        finally:
            self.buffers.put(buffer)
        if self.progress is not None:
            with self.lock:
                self.files_done += 1
                self.bytes_done += size
                done = (self.files_done, self.bytes_done, self.files_total, self.bytes_total)
            self.progress(*done)
        return FileEntry(relpath, size, stat.S_IMODE(before.st_mode) & 0o777, sha, chunks)

    def _read_and_stage(
        self, src: Any, view: memoryview, size: int
    ) -> tuple[str, int, tuple[ChunkEntry, ...]]:
        """(SHA-256, size, chunks) of the open file; a large file is stored as chunks."""
        if size > self.library.chunk_threshold:
            return self._store_chunked(src, view)
        return (*self._hash_and_stage(src, view), ())

    def _store_chunked(self, src: Any, view: memoryview) -> tuple[str, int, tuple[ChunkEntry, ...]]:
        """Cut and hash on this thread; new chunks are written by the chunk writers, several
        at a time, and all of this file's have ended (stored or failed) before it returns."""
        pending: list[Future[None]] = []
        try:
            result = store_chunked(
                src,
                view,
                self._wanted,
                lambda sha, data: pending.append(self._keep_chunk(sha, data)),
            )
        finally:
            wait(pending)  # none left running behind a failure
        for future in pending:
            future.result()  # the first write that failed fails the snapshot
        return result

    def _keep_chunk(self, sha: str, data: memoryview) -> Future[None]:
        """Hand one new chunk to a chunk writer (its bytes are valid only during this call).

        A chunk is written as a whole file is, whole blocks with O_DIRECT, so it is copied to
        page-aligned memory first (it sits at any offset of the worker's buffer). One writer
        waits for the disk on each O_DIRECT write (3.5 ms each for 64 KiB chunks, 2 busy
        cores): CHUNK_WRITERS of them keep that many writes in flight. Through the page cache
        instead, chunks cost fresh cache pages and waited for other writers' write-back."""
        self.chunk_slots.acquire()  # at most CHUNK_WRITERS chunks copied and not yet written
        n = len(data)
        try:
            scratch = self.chunk_buffers.get_nowait()
        except queue.Empty:
            scratch = mmap.mmap(-1, -(-max(n, MAXIMUM) // BLOCK) * BLOCK)
        if len(scratch) < n:  # (chunks are at most MAXIMUM long; a bound, not a trust)
            scratch = mmap.mmap(-1, -(-n // BLOCK) * BLOCK)
        memoryview(scratch)[:n] = data
        try:
            with self.lock:
                if self.chunk_writers is None:
                    self.chunk_writers = ThreadPoolExecutor(
                        CHUNK_WRITERS, thread_name_prefix="snapshot-chunks"
                    )
                writers = self.chunk_writers
            return writers.submit(self._write_chunk, sha, scratch, n)
        except BaseException:
            self.chunk_buffers.put(scratch)
            self.chunk_slots.release()
            raise

    def _write_chunk(self, sha: str, scratch: mmap.mmap, n: int) -> None:
        try:
            with self._temp(direct=n >= BLOCK) as (tmp, dst):
                dst.write(memoryview(scratch), n)
            self._stage(_Staged(tmp, sha, n))
        finally:
            self.chunk_buffers.put(scratch)
            self.chunk_slots.release()

    def close(self) -> None:
        """Stop the chunk writers (each file waited for its own writes already)."""
        if self.chunk_writers is not None:
            self.chunk_writers.shutdown(wait=True)

    def _hash_and_stage(self, src: Any, view: memoryview) -> tuple[str, int]:
        """(SHA-256, size) of the open file; new content is left staged in a temp file."""
        digest = hashlib.sha256()
        n = _read_full(src, view)
        digest.update(view[:n])
        if n < len(view):  # the whole file is in the buffer: write it only if new
            sha = digest.hexdigest()
            if not self._wanted(sha):
                return sha, n
            with self._temp(direct=n >= BLOCK) as (tmp, dst):
                dst.write(view, n)
            self._stage(_Staged(tmp, sha, n))
            return sha, n
        with self._temp() as (tmp, dst):  # larger than the buffer: hash while copying, one read
            while n:
                if dst.size:
                    digest.update(view[:n])
                dst.write(view, n)
                n = _read_full(src, view)
        sha = digest.hexdigest()
        self._stage(_Staged(tmp, sha, dst.size))
        return sha, dst.size

    @contextlib.contextmanager
    def _temp(self, direct: bool = True) -> Iterator[tuple[Path, _TempWriter]]:
        """A new temp file to write (whole blocks with O_DIRECT if `direct`); removed on
        error."""
        tmp, fd, direct = _create_temp(self.tmp, direct)
        try:
            with _TempWriter(fd, direct) as dst:
                yield tmp, dst
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _wanted(self, sha: str) -> bool:
        with self.lock:
            if sha in self.staged:
                return False
        return not self.library.has_blob(sha)

    def _stage(self, staged: _Staged) -> None:
        """Keep the first temp of each new content; any other is dropped without a flush."""
        with self.lock:
            held = staged.sha256 in self.staged or self.library.has_blob(staged.sha256)
            if not held:
                self.staged[staged.sha256] = staged
                self.new_bytes += staged.size
        if held:
            staged.tmp.unlink(missing_ok=True)

    def publish(self, pool: ThreadPoolExecutor, used: set[str]) -> None:
        """Every staged temp becomes its blob, durably (LibraryStorage.publish)."""
        self.library.storage.publish(pool, list(self.staged.values()), used)
        self.staged.clear()

    def discard_temps(self) -> None:
        for item in self.staged.values():
            item.tmp.unlink(missing_ok=True)


class _TempWriter:
    """Writes a temp file from a worker's buffer: whole blocks with O_DIRECT where the file
    system allows it, the last partial block (all of a file smaller than a block) through
    the page cache, so the file gets its exact size without a truncate.

    (Writing the tail as a zero-padded O_DIRECT block and cutting the padding off with
    ftruncate cost as much as the write itself for 10,000 small files: shrinking a file is
    a journalled truncate that puts the inode on the file system's orphan list, one at a
    time.) The page-cache tail becomes durable with the rest in `publish` (fsync or syncfs).
    Every write but the last is whole blocks, which keeps each O_DIRECT write's offset
    block-aligned.
    """

    def __init__(self, fd: int, direct: bool) -> None:
        self.fd, self.size, self.direct = fd, 0, direct
        self.cached = 0  # bytes written through the page cache
        self.went_direct = False  # some bytes were written with O_DIRECT

    def __enter__(self) -> _TempWriter:
        return self

    def __exit__(self, *failed: object) -> None:
        try:
            if failed[0] is None and self.cached > WHOLE:  # no O_DIRECT here: start write-back
                _start_write_back(self.fd)
        finally:
            os.close(self.fd)

    def write(self, buffer: memoryview, n: int) -> None:
        """Write `buffer[:n]`; `buffer` is page-aligned and a whole number of blocks long."""
        whole = n - n % BLOCK if self.direct else 0
        if whole:
            try:
                self._write_all(buffer[:whole], self.size)
                self.went_direct = True
            except OSError as exc:  # nothing was written (EINVAL is refused before any byte)
                if not (exc.errno == errno.EINVAL and self.size == 0):
                    raise
                whole = 0  # a device whose blocks are larger than BLOCK: page cache
        if whole < n:
            self._page_cache()
            self._write_all(buffer[whole:n], self.size + whole)
            self.cached += n - whole
        self.size += n

    def _write_all(self, data: memoryview, offset: int) -> None:
        done = 0
        while done < len(data):  # a short write (a filling disk) must not lose what was hashed
            done += os.pwrite(self.fd, data[done:], offset + done)

    def _page_cache(self) -> None:
        if self.direct:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~O_DIRECT)
            self.direct = False


def _create_temp(folder: Path, direct: bool) -> tuple[Path, int, bool]:
    """A new temp file in `folder`, opened for writing (O_DIRECT if `direct` and the file
    system allows it): its path, handle and whether O_DIRECT is on. One open where
    tempfile.mkstemp and a second open with O_DIRECT were two."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    use_direct = direct and bool(O_DIRECT)
    while True:
        path = folder / f"snap-{os.urandom(8).hex()}"
        try:
            return path, os.open(path, flags | (O_DIRECT if use_direct else 0), 0o600), use_direct
        except FileExistsError:
            continue
        except OSError as exc:
            if not (use_direct and exc.errno == errno.EINVAL):
                raise
            use_direct = False  # this file system refuses O_DIRECT


def _unlink(path: Path) -> int:
    """Remove a file; its size, or 0 if it was gone already."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _read_full(src: Any, view: memoryview) -> int:
    """Read until `view` is full or the file ends; returns the bytes read."""
    total = 0
    while total < len(view) and (n := src.readinto(view[total:])):
        total += n
    return total


def _start_write_back(fd: int) -> None:
    """Ask the kernel to start writing this file back now, without waiting for it.

    On Linux, POSIX_FADV_DONTNEED starts write-back of dirty pages and keeps them cached
    until written; the fsync later then waits for little. Elsewhere this does nothing.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def check_source_tree(
    source: Path,
    guard: Callable[[Path], None] | None = None,
    platform: str = DEFAULT_PLATFORM,
    outside_links: str = "refuse",
) -> int:
    """What a snapshot of `source` checks before it reads a byte (the folder, `guard`, every
    entry), without reading: a request refuses a bad source at once with this, and the
    snapshot checks again what it opens. Returns the number of files."""
    source = check_source_folder(source)
    root_fd = _open_folder(str(source), None, source)
    try:
        if guard is not None:
            guard(_real_path(root_fd, source))
        check_platform(platform)
        return len(walk_source_and_links(root_fd, source, platform, outside_links)[0])
    finally:
        os.close(root_fd)


def check_source_folder(source: Path) -> Path:
    if not source.is_absolute():
        raise SourceError(
            f"source path {str(source)!r} is not absolute",
            "give the full path of the folder as the site server sees it",
        )
    if not source.exists():
        raise SourceError(
            f"source folder {source} does not exist",
            "check the path; it is read by the site server, on its host",
        )
    if source.is_symlink() or not source.is_dir():
        raise SourceError(
            f"source {source} is not a folder", "give the folder that holds the files"
        )
    return source


@dataclass(frozen=True)
class Found:
    """A regular file the walk saw: the snapshot stores it only if it is still that file."""

    relpath: str
    dev: int
    ino: int
    size: int = 0  # as the walk saw it: for progress only


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_folder(name: str, dir_fd: int | None, shown: object) -> int:
    """A handle on a folder that is not a link (a FIFO never blocks: it is no folder)."""
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        raise SourceError(
            f"cannot read folder {str(shown)!r}", "give the site server read access"
        ) from None
    except OSError:
        raise _changed(str(shown)) from None


def _open_source_file(root_fd: int, relpath: str) -> int:
    """Open root/relpath through folder handles, following no link on the way; a FIFO or
    device opens without blocking and is then refused by its fstat."""
    *folders, name = relpath.split("/")
    opened: list[int] = []
    try:
        dir_fd = root_fd
        for folder in folders:
            dir_fd = os.open(folder, _FOLDER_FLAGS, dir_fd=dir_fd)
            opened.append(dir_fd)
        return os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        raise SourceError(
            f"cannot read source file {relpath!r}", "give the site server read access"
        ) from None
    except OSError:
        raise _changed(relpath) from None
    finally:
        for fd in opened:
            os.close(fd)


def _real_path(fd: int, shown: Path) -> Path:
    """Where the opened folder really is (Linux names it in /proc), links resolved."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(os.path.realpath(shown))


def _changed(relpath: str) -> SourceError:
    return SourceError(
        f"source file {relpath!r} changed while it was being read",
        "wait until the source folder is quiet, then retry",
    )


def walk_source(root_fd: int, root: Path, platform: str = DEFAULT_PLATFORM) -> list[Found]:
    """Every regular file under the open folder as a `Found`, sorted, or a SourceError."""
    return walk_source_and_links(root_fd, root, platform)[0]


def walk_source_and_links(
    root_fd: int, root: Path, platform: str = DEFAULT_PLATFORM, outside_links: str = "refuse"
) -> tuple[list[Found], list[LinkEntry], list[LinkEntry]]:
    """Every regular file under the open folder as a `Found`, the links kept as links, and
    the links to what is not in the package left out (`outside_links` "skip"), sorted; or a
    SourceError that lists every offender (up to MAX_LISTED) with the rule it breaks on
    `platform`'s clients.

    The whole tree is checked before a single byte is stored, so a refused source leaves
    nothing in the content library. A folder that is a Quartermaster home (site, DP or
    client) is refused: its files are secrets. A link's target is read, never followed.
    """
    walk = _Walk(platform)
    walk.folder(root_fd, root, "")
    check_outside_links(outside_links)
    skipped: list[LinkEntry] = []
    while True:  # leaving a link out may leave another link pointing at it with nothing
        names = frozenset([f.relpath for f in walk.found] + [link.path for link in walk.links])
        targets = {link.path: link.target for link in walk.links}
        checked = [
            (link, *link_check(link.path, link.target, platform, names, targets))
            for link in walk.links
        ]
        gone = [link for link, _, outside in checked if outside and outside_links == "skip"]
        if not gone:
            break
        skipped += gone
        walk.links = [link for link in walk.links if link not in gone]
    walk.offenders += [(link.path, problem) for link, problem, _ in checked if problem]
    if walk.offenders:
        outside = any(out for _, _, out in checked)
        raise SourceError(_offenders_text(root, platform, walk.offenders), _hint(platform, outside))
    walk.found.sort(key=lambda f: f.relpath)
    walk.links.sort(key=lambda link: link.path)
    return walk.found, walk.links, sorted(skipped, key=lambda link: link.path)


class _Walk:
    """What one walk found, and every entry it refuses, with the rule each breaks."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.found: list[Found] = []
        self.links: list[LinkEntry] = []
        self.offenders: list[tuple[str, str]] = []
        self.folded: dict[str, str] = {}  # collision key -> path: files, links, folders

    def folder(self, fd: int, folder: Path, prefix: str) -> None:
        try:
            names = sorted(os.listdir(fd))
        except PermissionError:
            raise SourceError(
                f"cannot read folder {str(folder)!r}", "give the site server read access"
            ) from None
        kind = home_kind(folder, set(names))
        if kind:
            raise SourceError(
                f"source folder {str(folder)!r} is {kind}: its files are secrets",
                "give a folder that holds only the package's files",
            )
        for name in names:
            self.entry(fd, folder, prefix, name)

    def entry(self, fd: int, folder: Path, prefix: str, name: str) -> None:
        rel = f"{prefix}{name}"
        problems = relpath_problems(rel, self.platform)
        self.offenders += [(rel, problem) for problem in problems]
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _changed(rel) from None
        other = self.folded.setdefault(collision_key(rel, self.platform), rel)
        if other != rel:
            self.offenders.append(
                (rel, f"and {other!r} differ only by letter case (Windows and macOS)")
            )
        if stat.S_ISLNK(st.st_mode):
            if self.platform in LINK_PLATFORMS:
                try:
                    self.links.append(LinkEntry(rel, os.readlink(name, dir_fd=fd)))
                except OSError:
                    raise _changed(rel) from None
            else:
                self.offenders.append(
                    (
                        rel,
                        f"is a symbolic link: a package for platform {self.platform!r} "
                        "cannot hold links (Windows clients)",
                    )
                )
        elif stat.S_ISDIR(st.st_mode):
            if problems:
                return  # its name is refused already; its entries would repeat it
            sub = _open_folder(name, fd, rel)
            try:
                seen = os.fstat(sub)
                if (seen.st_dev, seen.st_ino) != (st.st_dev, st.st_ino):
                    raise _changed(rel)
                self.folder(sub, folder / name, rel + "/")
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                self.offenders.append(
                    (
                        rel,
                        "is a hard link (it has other names, possibly outside the source "
                        "folder): replace it with a copy",
                    )
                )
            self.found.append(Found(rel, st.st_dev, st.st_ino, st.st_size))
        else:
            self.offenders.append((rel, "is not a regular file (device, pipe or socket)"))


def _offenders_text(root: Path, platform: str, offenders: list[tuple[str, str]]) -> str:
    offenders.sort()
    lines = [f"  {rel!r} {problem}" for rel, problem in offenders[:MAX_LISTED]]
    if len(offenders) > MAX_LISTED:
        lines.append(f"  ... and {len(offenders) - MAX_LISTED} more")
    count = len({rel for rel, _ in offenders})
    return (
        f"source folder {root} has {count} entries a package for platform {platform!r} "
        "cannot hold:\n" + "\n".join(lines)
    )


def _hint(platform: str, leaving: bool = False) -> str:
    if platform in LINK_PLATFORMS:
        return "rename or remove them; a link must be relative and point to a file or folder " + (
            "inside the source folder; to leave out of the package the links to what is not "
            "in it (each named in the result), add --outside-links skip"
            if leaving
            else "inside the source folder"
        )
    return (
        "rename or remove them so that every client can hold them, or, if the package is "
        "only for Linux or macOS clients, say so with --platform linux (or macos): Windows "
        "name rules then do not apply and links inside the folder are kept"
    )
