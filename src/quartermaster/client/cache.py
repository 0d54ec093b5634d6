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

    def blob_path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

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
        return evicted
