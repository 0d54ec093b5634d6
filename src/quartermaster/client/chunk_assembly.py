"""Write a chunked file into the cache once, as its chunks arrive, and verify it whole.

A large file is published as chunks (blobs named by their SHA-256), so that a new version
moves only the chunks that changed. The client holds the file whole, as the blob of the
file's own SHA-256 with a chunk map (client/cache.py): each fetched chunk, verified by its own
hash on arrival, is written at its offset in `<hash>.part`; the chunks the cache already holds
(inside an earlier version's file, or fetched on their own from a store without pack
requests) are copied in at theirs; a thread hashes the file in order while its chunks come;
and only a file whose SHA-256 matches is renamed into place. The work folder then links it
like any blob. One write of the bytes: writing each chunk to a file of its own and then the
file out of them wrote every byte twice and made an inode per chunk.

Nothing the cache held before is trusted: a chunk copied from it is used only because the
whole file then matches. When it does not, each chunk's place is hashed to find the damaged
one; the cached copy it came from is removed and HashMismatch names the chunk (the caller
fetches again). A file whose chunks all match but not the file itself has a wrong chunk
list, and is refused.

An assembly stopped before its end (a paused schedule, a stop, a failed download) keeps its
`.part` and a map of the chunks in it, so the next run fetches only the rest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from quartermaster.client.cache import PARTIAL, ChunkMap, ContentCache, Slice
from quartermaster.core.errors import HashMismatch
from quartermaster.core.manifest import ChunkEntry, FileEntry, Manifest

BLOB_MODE = 0o444  # as every cached blob: nothing writes to it once it is in place
_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


@dataclass(eq=False)
class _File:
    """One chunked file being written: which of its chunks are in place, and from where."""

    entry: FileEntry
    part: Path
    fd: int = -1
    placed: set[int] = field(default_factory=set)  # chunk indexes whose bytes are written
    copied_from: dict[int, str] = field(default_factory=dict)  # index -> the cached blob read


class Assembly:
    """The chunked files of one manifest that the cache does not hold whole yet.

    Use: `needed()` (the chunks to fetch), `open()`, `place` for each chunk fetched (any
    thread), `finish()`; `stop()` if anything fails in between."""

    def __init__(self, cache: ContentCache, manifest: Manifest) -> None:
        self.cache = cache
        self.whole = {e.sha256 for e in manifest.files if not e.chunks}  # files kept whole
        self.files: list[_File] = []
        seen: set[str] = set()
        for entry in manifest.files:
            if entry.chunks and entry.sha256 not in seen and not cache.has(entry.sha256):
                seen.add(entry.sha256)
                self.files.append(self._resumed(entry))
        self._where: dict[str, list[tuple[_File, int]]] = {}  # chunk -> places still empty
        for file in self.files:
            for index, chunk in enumerate(file.entry.chunks):
                if index not in file.placed:
                    self._where.setdefault(chunk.sha256, []).append((file, index))
        self._sources = {
            sha: found for sha in self._where if (found := cache.locate(sha)) is not None
        }
        self._lock = threading.Condition()
        self._hasher: threading.Thread | None = None
        self._digests: dict[str, str] = {}  # file sha -> what its bytes hash to
        self._stopping = False
        self._read_from: set[str] = set()  # cached blobs chunks were copied from
        self._failure: BaseException | None = None

    def _resumed(self, entry: FileEntry) -> _File:
        """The file, with the chunks a stopped run left in its `.part` (those the map records
        at the offsets this manifest gives them)."""
        blob = self.cache.blob_path(entry.sha256)
        file = _File(entry, blob.with_name(blob.name + PARTIAL))
        if file.part.is_file():
            recorded = set(self.cache.read_chunk_map(entry.sha256, partial=True))
            file.placed = {
                i for i, c in enumerate(entry.chunks) if (c.sha256, c.offset, c.length) in recorded
            }
        return file

    def needed(self) -> dict[str, int]:
        """The chunks to fetch (sha256 -> length): in no place yet and nowhere in the cache."""
        return {
            sha: places[0][0].entry.chunks[places[0][1]].length
            for sha, places in self._where.items()
            if sha not in self._sources
        }

    def wants(self, sha256: str) -> bool:
        """Is this a chunk of a file being written here?"""
        return sha256 in self._where

    def holders(self) -> set[str]:
        """What must not be evicted while this runs: the files and the blobs read from."""
        return {f.entry.sha256 for f in self.files} | {s.holder for s in self._sources.values()}

    def bytes_to_write(self) -> int:
        return sum(f.entry.size for f in self.files) - sum(_size(f.part) for f in self.files)

    def open(self) -> None:
        """Open each `.part`, copy in the chunks the cache holds, start hashing in order."""
        for file in self.files:
            file.part.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (0 if file.placed else os.O_TRUNC)
            file.fd = os.open(file.part, flags, 0o600)
        for sha, source in self._sources.items():
            self._copy_in(sha, source)
        if self.files:
            self._hasher = threading.Thread(target=self._hash_all, name="assemble-hash")
            self._hasher.start()

    def place(self, sha256: str, data: bytes) -> bool:
        """Write a verified chunk at its places; False if no file here wants it, or if it is
        also a file of its own (then its blob file is written as well)."""
        places = self._where.get(sha256)
        if not places:
            return False
        for file, index in places:
            _write_at(file.fd, memoryview(data), file.entry.chunks[index].offset)
        self._placed(places)
        return sha256 not in self.whole

    def finish(self) -> list[str]:
        """Copy in the chunks fetched on their own, wait for the hashes, put each file in
        place with its chunk map; the files made. HashMismatch if one is damaged."""
        for sha in [sha for sha, places in self._where.items() if not self._done(places)]:
            source = self.cache.locate(sha)
            if source is None:
                self.stop()
                raise _damaged(sha, "nothing: the chunk is not in the cache")
            self._copy_in(sha, source)
        self._join()
        made = []
        for file in self.files:
            if self._digests.get(file.entry.sha256) != file.entry.sha256:
                self._refuse(file)
            os.fchmod(file.fd, BLOB_MODE)
            os.close(file.fd)
            file.fd = -1
            os.replace(file.part, self.cache.blob_path(file.entry.sha256))
            self.cache.write_chunk_map(file.entry.sha256, _chunk_map(file.entry.chunks))
            self.cache.chunk_map_path(file.entry.sha256, partial=True).unlink(missing_ok=True)
            made.append(file.entry.sha256)
        for holder in self._read_from - self.whole:
            if holder in self._where:  # a chunk fetched or cached on its own: now inside
                self.cache.remove(holder)
        self.files = []
        return made

    def stop(self) -> None:
        """Keep what is written for the next run: close each `.part` and record its chunks."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._join(raise_failure=False)
        for file in self.files:
            if file.fd < 0:
                continue
            os.close(file.fd)
            file.fd = -1
            chunks = [c for i, c in enumerate(file.entry.chunks) if i in file.placed]
            with contextlib.suppress(OSError):
                self.cache.write_chunk_map(file.entry.sha256, _chunk_map(chunks), partial=True)
        self.files = []

    # ------------------------------------------------------------------ internals

    def _copy_in(self, sha: str, source: Slice) -> None:
        places = self._where[sha]
        self._read_from.add(source.holder)
        try:
            fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # evicted or removed since it was found
            self.stop()
            raise _damaged(sha, "nothing: the chunk is gone from the cache") from None
        try:
            for file, index in places:
                chunk = file.entry.chunks[index]
                _copy_range(fd, source.offset, file.fd, chunk.offset, chunk.length)
                file.copied_from[index] = source.holder
        except _Short:
            self.stop()
            self.cache.remove(source.holder)
            raise _damaged(sha, "fewer bytes than its length") from None
        finally:
            os.close(fd)
        self._placed(places)

    def _placed(self, places: list[tuple[_File, int]]) -> None:
        with self._lock:
            for file, index in places:
                file.placed.add(index)
            self._lock.notify_all()

    def _done(self, places: list[tuple[_File, int]]) -> bool:
        with self._lock:
            return all(index in file.placed for file, index in places)

    def _hash_all(self) -> None:
        """Hash each file in order, each chunk as soon as it is in place."""
        try:
            buffer = memoryview(
                bytearray(max(c.length for f in self.files for c in f.entry.chunks))
            )
            for file in self.files:
                digest = hashlib.sha256()
                for index, chunk in enumerate(file.entry.chunks):
                    with self._lock:
                        while index not in file.placed and not self._stopping:
                            self._lock.wait()
                        if self._stopping:
                            return
                    view = buffer[: chunk.length]
                    if _read_at(file.fd, view, chunk.offset) != chunk.length:
                        break  # shorter than the manifest says: the digest cannot match
                    digest.update(view)
                self._digests[file.entry.sha256] = digest.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by _join
            self._failure = exc

    def _join(self, raise_failure: bool = True) -> None:
        if self._hasher is not None:
            self._hasher.join()
            self._hasher = None
        if raise_failure and self._failure is not None:
            self.stop()
            raise self._failure

    def _refuse(self, file: _File) -> None:
        """The file does not match: name the damaged chunk and remove where it came from,
        or refuse the chunk list. Nothing of this `.part` is kept."""
        buffer = memoryview(bytearray(max(c.length for c in file.entry.chunks)))
        damaged: tuple[ChunkEntry, int, str] | None = None
        for index, chunk in enumerate(file.entry.chunks):
            view = buffer[: chunk.length]
            got = _read_at(file.fd, view, chunk.offset)
            actual = hashlib.sha256(view[:got]).hexdigest()
            if actual != chunk.sha256:
                damaged = (chunk, index, actual)
                break
        self.stop()
        self.cache.remove(file.entry.sha256)  # the .part and its map
        if damaged is not None:
            chunk, index, actual = damaged
            if index in file.copied_from:
                self.cache.remove(file.copied_from[index])
            raise _damaged(chunk.sha256, actual)
        raise HashMismatch(
            f"file {file.entry.path!r} assembled from its chunks",
            file.entry.sha256,
            self._digests.get(file.entry.sha256, "unknown"),
            "every chunk matches its hash but the file does not: the manifest's chunk list "
            "is wrong; report it to the site's administrator",
        )


def _chunk_map(chunks: tuple[ChunkEntry, ...] | list[ChunkEntry]) -> ChunkMap:
    return [(c.sha256, c.offset, c.length) for c in chunks]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_at(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _copy_range(source: int, at: int, target: int, to: int, length: int) -> None:
    """Copy `length` bytes in the kernel (copy_file_range), else through a buffer."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(source, target, length - done, at + done, to + done)
            if n == 0:
                raise _Short
            done += n
        return
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
    view = memoryview(bytearray(length - done))
    if _read_at(source, view, at + done) != len(view):
        raise _Short
    _write_at(target, view, to + done)


class _Short(Exception):
    """The cached source ended before the chunk did."""


def _damaged(sha256: str, actual: str) -> HashMismatch:
    return HashMismatch(
        f"cached chunk {sha256}",
        sha256,
        actual,
        "the cached copy is damaged; it is removed and fetched again",
    )
