"""The content cache: blobs by SHA-256 in the store layout, shared by every package.

Each blob is stored once whatever package lists it. A blob's modification time records its
last use, so the least recently used go first when the cache is over its size limit; blobs
of the deployment being installed are pinned and never evicted. `<hash>.part` files are
transfers to resume; they count towards the size and are evicted like blobs.

A chunked file is held whole, as the blob of its own SHA-256, with a chunk map beside the
store (`chunkmaps/<xx>/<hash>`: each chunk's hash, offset and length in it): a later version
reads its unchanged chunks from there, and a peer serves them as slices. The file is written
once, as its chunks arrive (client/chunk_assembly.py). A map is a hint, never trusted: what
is read through it is hashed (the assembled file as a whole, a peer's slice on its own), and
a map whose file is gone is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from quartermaster.core.store_layout import blob_path

PARTIAL = ".part"
MEMO_PATHS = 100_000
CHUNK_MAPS = "chunkmaps"
ChunkMap = list[tuple[str, int, int]]  # (chunk sha256, offset in the file, length)


@dataclass(frozen=True)
class Slice:
    """Where a blob's bytes are: a file of its own (offset 0, its whole length) or a chunk
    inside a held file."""

    path: Path
    offset: int
    length: int
    holder: str  # the blob named by `path`


@dataclass(frozen=True)
class CacheEntry:
    sha256: str
    path: Path
    size: int
    last_used: float
    partial: bool


class ContentCache:
    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        # A run asks for each blob's path several times (present? destination, lay-out,
        # last use); building a Path is most of the cost of a 10,000-file package's
        # bookkeeping, so each is built once per cache object (one per agent run).
        self._paths: dict[str, Path] = {}
        # At most this many bytes are in the cache since the last scan (what the scan found
        # plus what make_room let in): make_room(0) after an install need not scan again
        # while it is under the limit. None: not known, scan.
        self._used_bound: int | None = None
        self._chunks: dict[str, tuple[str, int, int]] | None = None  # chunk -> held file, at

    # ------------------------------------------------------------------ chunk maps

    def chunk_map_path(self, sha256: str, partial: bool = False) -> Path:
        return self.root / CHUNK_MAPS / sha256[:2] / (sha256 + (PARTIAL if partial else ""))

    def read_chunk_map(self, sha256: str, partial: bool = False) -> ChunkMap:
        """The chunks recorded for a held file (or for its assembly in progress); [] if
        none are, or the map is unreadable."""
        try:
            data = json.loads(self.chunk_map_path(sha256, partial).read_bytes())
            return [(str(c), int(o), int(n)) for c, o, n in data]
        except (OSError, ValueError, TypeError):
            return []

    def write_chunk_map(self, sha256: str, chunks: ChunkMap, partial: bool = False) -> None:
        """Record where chunks are in a held file (or a partial one); written whole or not at
        all, without fsync: a map lost in a crash only costs a download."""
        path = self.chunk_map_path(sha256, partial)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_bytes(json.dumps(chunks, separators=(",", ":")).encode("ascii"))
        os.replace(temp, path)
        if not partial and self._chunks is not None:
            for chunk, offset, length in chunks:
                self._chunks.setdefault(chunk, (sha256, offset, length))

    def locate(self, sha256: str) -> Slice | None:
        """Where the cache holds `sha256`'s bytes, as a blob or as a chunk of a held file
        (not checked: the reader hashes what it reads)."""
        path = self.blob_path(sha256)
        with contextlib.suppress(FileNotFoundError):
            return Slice(path, 0, path.stat().st_size, sha256)
        if self._chunks is None:
            self._chunks = self._load_chunk_maps()
        found = self._chunks.get(sha256)
        if found is None:
            return None
        holder, offset, length = found
        if not self.has(holder):  # evicted or removed since: forget its map
            del self._chunks[sha256]
            self.chunk_map_path(holder).unlink(missing_ok=True)
            return None
        return Slice(self.blob_path(holder), offset, length, holder)

    def _load_chunk_maps(self) -> dict[str, tuple[str, int, int]]:
        found: dict[str, tuple[str, int, int]] = {}
        for path in (self.root / CHUNK_MAPS).glob("??/*"):
            if path.name.endswith(PARTIAL) or path.name.startswith("."):
                continue
            if not self.has(path.name):
                path.unlink(missing_ok=True)
                continue
            for chunk, offset, length in self.read_chunk_map(path.name):
                found.setdefault(chunk, (path.name, offset, length))
        return found

    def blob_path(self, sha256: str) -> Path:
        path = self._paths.get(sha256)
        if path is None:
            if len(self._paths) >= MEMO_PATHS:  # a peer server's cache lives for days
                self._paths.clear()
            path = self._paths[sha256] = blob_path(self.root, sha256)
        return path

    def has(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def touch(self, sha256: str, when: float | None = None) -> None:
        """Mark a blob used now (or at `when`, seconds since the epoch)."""
        stamp = time.time() if when is None else when
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.blob_path(sha256), (stamp, stamp))

    def remove(self, sha256: str) -> None:
        """Remove a blob, its partial transfer and, for a held file, its chunk maps."""
        path = self.blob_path(sha256)
        for candidate in (
            path,
            path.with_name(path.name + PARTIAL),
            self.chunk_map_path(sha256),
            self.chunk_map_path(sha256, partial=True),
        ):
            candidate.unlink(missing_ok=True)

    def entries(self) -> list[CacheEntry]:
        content = self.root / "content" / "sha256"
        if not content.is_dir():
            return []
        found = []
        for path in content.glob("??/*"):
            partial = path.name.endswith(PARTIAL)
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                sha = path.name.removesuffix(PARTIAL)
                found.append(CacheEntry(sha, path, info.st_size, info.st_mtime, partial))
        return found

    def used_bytes(self) -> int:
        return sum(entry.size for entry in self.entries())

    def make_room(self, incoming: int, pinned: Iterable[str] = ()) -> list[str]:
        """Evict least recently used, unpinned blobs until `incoming` more bytes fit.

        Returns the evicted hashes. Pinned blobs may keep the cache above its limit, so a
        deployment larger than the limit still installs.
        """
        if incoming == 0 and self._used_bound is not None and self._used_bound <= self.limit_bytes:
            return []  # nothing was let in beyond what fits: no eviction, no scan
        keep = set(pinned)
        entries = self.entries()
        used = sum(entry.size for entry in entries)
        evicted: list[str] = []
        for entry in sorted(entries, key=lambda e: (e.last_used, e.sha256)):
            if used + incoming <= self.limit_bytes:
                break
            if entry.sha256 in keep:
                continue
            if entry.partial:
                entry.path.unlink(missing_ok=True)
            else:
                self.remove(entry.sha256)
            used -= entry.size
            evicted.append(entry.sha256)
        self._used_bound = used + incoming
        return evicted
