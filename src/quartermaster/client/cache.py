"""The content cache: blobs by SHA-256 in the store layout, shared by every package.

Each blob is stored once whatever package lists it. A blob's modification time records its
last use, so the least recently used go first when the cache is over its size limit; blobs
of the deployment being installed are pinned and never evicted. `<hash>.part` files are
transfers to resume; they count towards the size and are evicted like blobs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from quartermaster.core.store_layout import blob_path

PARTIAL = ".part"
MEMO_PATHS = 100_000


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
        path = self.blob_path(sha256)
        for candidate in (path, path.with_name(path.name + PARTIAL)):
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
            entry.path.unlink(missing_ok=True)
            used -= entry.size
            evicted.append(entry.sha256)
        self._used_bound = used + incoming
        return evicted
