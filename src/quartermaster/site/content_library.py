"""The content library: the only place that ever reads a package's live source folder.

A snapshot walks the source once and stores each distinct content once under its SHA-256.
Everything downstream (DPs, clients) receives bytes by hash from here, which is what makes
KB 907979 impossible.

How a snapshot spends its time: files are hashed on several threads (`hashlib`, file reads
and writes release the GIL; `openssl dgst` is single-threaded). A file that fits in a
worker's buffer is read once and hashed, and written only if the library lacks its content,
so an unchanged file of a `package update` costs a read and nothing else. A larger file is
hashed while being copied (the bytes stored are the bytes hashed, never a second read) and
the copy is dropped if the library already had it. New content goes to temp files written
with O_DIRECT from the workers' page-aligned buffers: the bytes must reach the disk before
the snapshot returns anyway, and going through the page cache would cost a fresh cache page
per 4 KiB and write-back competing with the hashing. Then all temps are fsynced, renamed
into place, and each blob folder is fsynced once. Where the file system refuses O_DIRECT,
temps are written through the page cache and their write-back is started at once.

What is guaranteed: nothing half-written is ever visible (a blob appears under its name only
after its bytes were fsynced), and `snapshot` returns only after every blob the version
needs is durable, so the version row the caller commits afterwards never names content a
crash could lose. A snapshot that fails midway removes its temp files and makes no version.
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
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.durable_files import fsync_path, write_atomic
from quartermaster.core.errors import SourceError
from quartermaster.core.hashing import CHUNK
from quartermaster.core.manifest import (
    DEFAULT_PLATFORM,
    LINK_PLATFORMS,
    FileEntry,
    LinkEntry,
    check_platform,
    collision_key,
    link_problem,
    relpath_problems,
)
from quartermaster.core.store_layout import blob_path, manifest_path
from quartermaster.site.source_roots import home_kind

WHOLE = 2 * CHUNK  # a file up to this size is read whole, then written only if new
MAX_WORKERS = 8
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


Progress = Callable[[int, int, int, int], None]


def _workers() -> int:
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) + 1))


class ContentLibrary:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def blob_path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

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
        content = self.root / "content" / "sha256"
        for shard in sorted(content.iterdir()) if content.is_dir() else []:
            for path in shard.iterdir() if shard.is_dir() else []:
                if path.name not in used_blobs:
                    swept.bytes += _unlink(path)
                    swept.blobs += 1
        folder = self.root / "manifests"
        for path in folder.iterdir() if folder.is_dir() else []:
            if path.name.removesuffix(".json") not in used_manifests:
                _unlink(path)
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
        write_atomic(manifest_path(self.root, package_hash), canonical_json(envelope))

    def snapshot(
        self,
        source: Path,
        guard: Callable[[Path], None] | None = None,
        platform: str = DEFAULT_PLATFORM,
        progress: Progress | None = None,
        tmp: Path | None = None,
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
        default the library's tmp/.
        """
        source = check_source_folder(source)
        check_platform(platform)
        root_fd = _open_folder(str(source), None, source)
        try:
            if guard is not None:
                guard(_real_path(root_fd, source))
            # the whole tree is checked first
            found, links = walk_source_and_links(root_fd, source, platform)
            run = _SnapshotRun(self, root_fd, tmp or self.tmp, progress, found)
            run.tmp.mkdir(parents=True, exist_ok=True)
            try:
                with ThreadPoolExecutor(_workers(), thread_name_prefix="snapshot") as pool:
                    try:
                        files = list(pool.map(run.store_file, found))
                        run.publish(pool, {entry.sha256 for entry in files})
                    except BaseException:
                        pool.shutdown(cancel_futures=True)  # no more files once one failed
                        raise
            finally:
                run.discard_temps()
        finally:
            os.close(root_fd)
        return Snapshot(files, run.new_bytes, links)


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
                sha, size = self._hash_and_stage(src, memoryview(buffer))
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
        return FileEntry(relpath, size, stat.S_IMODE(before.st_mode) & 0o777, sha)

    def _hash_and_stage(self, src: Any, view: memoryview) -> tuple[str, int]:
        """(SHA-256, size) of the open file; new content is left staged in a temp file."""
        digest = hashlib.sha256()
        n = _read_full(src, view)
        digest.update(view[:n])
        if n < len(view):  # the whole file is in the buffer: write it only if new
            sha = digest.hexdigest()
            if not self._wanted(sha):
                return sha, n
            with self._temp() as (tmp, dst):
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
    def _temp(self) -> Iterator[tuple[Path, _TempWriter]]:
        """A new temp file to write, on its way to disk once written; removed on error."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="snap-")
        tmp = Path(name)
        try:
            with _TempWriter(fd, tmp) as dst:
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
        """fsync every staged temp, rename each into place, then fsync each folder once.

        The folders of every blob in `used` are fsynced, not only those of new blobs: a blob
        found already held may have been renamed in just now by a concurrent snapshot.
        """
        staged = list(self.staged.values())
        list(pool.map(lambda item: fsync_path(item.tmp), staged))
        for item in staged:
            final = self.library.blob_path(item.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(item.tmp, final)
        self.staged.clear()
        for folder in sorted({self.library.blob_path(sha).parent for sha in used}):
            fsync_path(folder)

    def discard_temps(self) -> None:
        for item in self.staged.values():
            item.tmp.unlink(missing_ok=True)


class _TempWriter:
    """Writes a temp file from a worker's buffer: O_DIRECT where the file system allows it.

    Each write hands over whole blocks: the last, partial one goes out zero-padded, and the
    padding is cut off when the writer closes. Only the last write of a file may be partial,
    which keeps every write's file offset block-aligned.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path, self.size, self.direct = fd, path, 0, False
        if O_DIRECT:
            try:
                direct = os.open(path, os.O_WRONLY | os.O_CLOEXEC | O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: this file system refuses O_DIRECT
                    os.close(fd)
                    raise
            else:
                os.close(fd)
                self.fd, self.direct = direct, True

    def __enter__(self) -> _TempWriter:
        return self

    def __exit__(self, *failed: object) -> None:
        try:
            if failed[0] is None:
                if self.direct:
                    os.ftruncate(self.fd, self.size)
                else:
                    _start_write_back(self.fd)
        finally:
            os.close(self.fd)

    def write(self, buffer: memoryview, n: int) -> None:
        """Write `buffer[:n]`; `buffer` is page-aligned and a whole number of blocks long."""
        end = n
        if self.direct:
            end = -(-n // BLOCK) * BLOCK
            buffer[n:end] = bytes(end - n)
        done = 0
        while done < end:  # a short write (a filling disk) must not lose what was hashed
            try:
                done += os.write(self.fd, buffer[done:end])
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL and self.size == done == 0):
                    raise
                self._go_buffered()  # a device whose blocks are larger than BLOCK
                end = n
        self.size += n

    def _go_buffered(self) -> None:
        os.close(self.fd)
        self.fd, self.direct = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC), False


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
    source: Path, guard: Callable[[Path], None] | None = None, platform: str = DEFAULT_PLATFORM
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
        return len(walk_source(root_fd, source, platform))
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
    root_fd: int, root: Path, platform: str = DEFAULT_PLATFORM
) -> tuple[list[Found], list[LinkEntry]]:
    """Every regular file under the open folder as a `Found`, and the links kept as links,
    sorted; or a SourceError that lists every offender (up to MAX_LISTED) with the rule it
    breaks on `platform`'s clients.

    The whole tree is checked before a single byte is stored, so a refused source leaves
    nothing in the content library. A folder that is a Quartermaster home (site, DP or
    client) is refused: its files are secrets. A link's target is read, never followed.
    """
    walk = _Walk(platform)
    walk.folder(root_fd, root, "")
    names = frozenset([f.relpath for f in walk.found] + [link.path for link in walk.links])
    for link in walk.links:
        problem = link_problem(link.path, link.target, platform, names)
        if problem:
            walk.offenders.append((link.path, problem))
    if walk.offenders:
        raise SourceError(_offenders_text(root, platform, walk.offenders), _hint(platform))
    walk.found.sort(key=lambda f: f.relpath)
    walk.links.sort(key=lambda link: link.path)
    return walk.found, walk.links


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


def _hint(platform: str) -> str:
    if platform in LINK_PLATFORMS:
        return (
            "rename or remove them; a link must be relative and point to a file or folder "
            "inside the source folder"
        )
    return (
        "rename or remove them so that every client can hold them, or, if the package is "
        "only for Linux or macOS clients, say so with --platform linux (or macos): Windows "
        "name rules then do not apply and links inside the folder are kept"
    )
