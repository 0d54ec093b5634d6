"""A distribution point's content store: verified blobs and signed manifests, nothing else.

The store is the plain layout of `core.store_layout`, so any static web server can serve it.
A blob only appears under its final name after its bytes hashed to that name: every write
goes to a temp or `.part` file beside it and is fsynced and renamed. A blob is stored once,
whatever number of packages and versions use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.core.blob_transfer import BlobFetcher, Progress, TransferError
from quartermaster.core.durable_files import atomic_writer, write_atomic
from quartermaster.core.errors import HashMismatch, IntegrityError, NotFound, QMError
from quartermaster.core.hashing import CHUNK, is_sha256_hex, sha256_file
from quartermaster.core.manifest import Manifest
from quartermaster.core.store_layout import blob_path, blob_url, manifest_path

PART_SUFFIX = ".part"


class BlobUnavailable(QMError):
    """No source offered a good copy of a blob."""

    code = "blob_unavailable"
    http_status = 502


class Cancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised from inside a long operation when the caller asked it to stop."""


CancelCheck = Callable[[], bool]


@dataclass
class BlobFetchOutcome:
    sha256: str
    source: str  # the base URL (or local root) that supplied the bytes; "" if already held
    bytes_transferred: int = 0
    resumed_from: int = 0
    failures: list[str] = field(default_factory=list)  # "source: reason", one per skipped source


@dataclass
class GCResult:
    removed_versions: list[str] = field(default_factory=list)
    removed_blobs: int = 0
    freed_bytes: int = 0


class DPStore:
    """One folder with the store layout; every method is safe to run while it is being served."""

    # Blobs may be written straight to `blob_path` by a pack request (core.pack_transfer);
    # a store that must do more with each blob (an upload) says False.
    takes_packs = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self._buffer = bytearray(CHUNK)  # reused by hashing and copying (one store per thread)

    # --- paths and presence -------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def manifest_path(self, package_hash: str) -> Path:
        return manifest_path(self.root, package_hash)

    def has_manifest(self, package_hash: str) -> bool:
        return self.manifest_path(package_hash).is_file()

    def missing_blobs(self, manifest: Manifest) -> dict[str, int]:
        """Distinct blobs of a version this store lacks (sha256 -> size)."""
        return {sha: size for sha, size in manifest.blobs().items() if not self.has_blob(sha)}

    # --- manifests ----------------------------------------------------------------------

    def write_manifest(self, package_hash: str, envelope: bytes) -> None:
        """Store a signed manifest envelope; the caller has verified it already."""
        write_atomic(self.manifest_path(package_hash), envelope)

    def remove_manifest(self, package_hash: str) -> None:
        self.manifest_path(package_hash).unlink(missing_ok=True)

    def read_envelope(self, package_hash: str) -> dict[str, Any]:
        path = self.manifest_path(package_hash)
        try:
            envelope = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(f"manifest {package_hash} is not in the store at {self.root}") from None
        except ValueError as exc:
            raise IntegrityError(
                f"{path} is not valid JSON: {exc}", "the version is fetched again from the site"
            ) from None
        if not isinstance(envelope, dict):
            raise IntegrityError(f"{path} is not a signed manifest envelope")
        return envelope

    def manifest(self, package_hash: str) -> Manifest:
        return Manifest.from_dict(self.read_envelope(package_hash).get("signed"))

    def held_versions(self) -> list[str]:
        """Package hashes of every stored manifest."""
        folder = self.root / "manifests"
        if not folder.is_dir():
            return []
        names = (p.name.removesuffix(".json") for p in folder.iterdir() if p.suffix == ".json")
        return sorted(name for name in names if is_sha256_hex(name))

    # --- putting blobs ------------------------------------------------------------------

    def put_blob_file(self, source: Path, sha256: str) -> int:
        """Copy a local file in as blob `sha256`, hashing while copying; returns bytes copied.

        Refuses (HashMismatch, nothing stored) when the file's bytes do not hash to `sha256`.
        """
        dest = self.blob_path(sha256)
        if dest.is_file():
            return 0
        view = memoryview(self._buffer)
        digest = hashlib.sha256()
        copied = 0
        with open(source, "rb", buffering=0) as reader, atomic_writer(dest) as writer:
            while n := reader.readinto(view):  # type: ignore[attr-defined]
                chunk = view[:n]
                digest.update(chunk)
                writer.write(chunk)
                copied += n
            if digest.hexdigest() != sha256:  # raising here makes atomic_writer drop the temp
                raise HashMismatch(str(source), sha256, digest.hexdigest())
        return copied

    def fetch_blob(
        self,
        fetcher: BlobFetcher,
        sources: Sequence[str],
        sha256: str,
        size: int,
        on_progress: Progress | None = None,
    ) -> BlobFetchOutcome:
        """Pull blob `sha256` from the first source that serves good bytes.

        The `.part` file beside the blob survives a failed source or a killed process, so the
        next source (or the next run) continues with a Range request: the blob is named by its
        content, any source's bytes are the same bytes.
        """
        outcome = BlobFetchOutcome(sha256, "")
        if self.has_blob(sha256):
            return outcome
        for source in sources:
            if self._try_source(fetcher, source, sha256, size, on_progress, outcome):
                outcome.source = source
                return outcome
        raise BlobUnavailable(
            f"blob {sha256} ({size} bytes) could not be fetched from any of {len(sources)} "
            f"sources: " + "; ".join(outcome.failures or ["no sources given"]),
            "check that the sources hold the content and the site lists them; it is retried",
        )

    def _try_source(
        self,
        fetcher: BlobFetcher,
        source: str,
        sha256: str,
        size: int,
        on_progress: Progress | None,
        outcome: BlobFetchOutcome,
    ) -> bool:
        url = blob_url(source, sha256)
        dest = self.blob_path(sha256)
        for _attempt in range(2):  # a mismatch after a resume may be the old .part's fault
            resumed = self._part_size(dest)
            try:
                result = fetcher.fetch(url, dest, sha256, size, on_progress)
            except HashMismatch as exc:
                outcome.failures.append(f"{source}: {exc.message}")
                if resumed:
                    continue  # the fetcher dropped the .part; retry this source from zero
                return False
            except (TransferError, IntegrityError) as exc:
                outcome.failures.append(f"{source}: {exc.message}")
                return False
            outcome.bytes_transferred += result.bytes_transferred
            outcome.resumed_from = result.resumed_from
            return True
        return False

    @staticmethod
    def _part_size(dest: Path) -> int:
        try:
            return dest.with_name(dest.name + PART_SUFFIX).stat().st_size
        except FileNotFoundError:
            return 0

    # --- validation and garbage collection ------------------------------------------------

    def validate(
        self, package_hashes: Iterable[str], cancel: CancelCheck | None = None
    ) -> list[str]:
        """Re-hash every blob the given versions use; remove the bad ones.

        Returns the blobs whose bytes did not match (now removed; `missing_blobs` lists them
        for re-fetching, with any that vanished). Each blob is read once, however many of the
        versions share it.
        """
        bad: list[str] = []
        for sha256, size in self._blobs_of(package_hashes).items():
            if cancel is not None and cancel():
                raise Cancelled()
            if not self._blob_is_good(sha256, size):
                bad.append(sha256)
        return bad

    def _blob_is_good(self, sha256: str, size: int) -> bool:
        path = self.blob_path(sha256)
        try:
            actual, actual_size = sha256_file(path, self._buffer)
        except FileNotFoundError:
            return True  # nothing bad is held; a missing blob is simply fetched
        if actual == sha256 and actual_size == size:
            return True
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return False

    def _blobs_of(self, package_hashes: Iterable[str]) -> dict[str, int]:
        """Blobs the held versions use; a damaged manifest is dropped so it is fetched again."""
        blobs: dict[str, int] = {}
        for package_hash in package_hashes:
            if not self.has_manifest(package_hash):
                continue
            try:
                blobs.update(self.manifest(package_hash).blobs())
            except QMError:
                self.remove_manifest(package_hash)
        return blobs

    def gc(self, keep: Collection[str]) -> GCResult:
        """Remove versions not in `keep`, and every blob and leftover no kept version uses."""
        result = GCResult()
        for package_hash in self.held_versions():
            if package_hash not in keep:
                self.remove_manifest(package_hash)
                result.removed_versions.append(package_hash)
        used = set(self._blobs_of(h for h in keep if is_sha256_hex(h)))
        for path in self._content_files():
            name = path.name.removesuffix(PART_SUFFIX)
            if name in used and not path.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                result.freed_bytes += size
                result.removed_blobs += not path.name.endswith(PART_SUFFIX)
        return result

    def _content_files(self) -> Iterator[Path]:
        folder = self.root / "content" / "sha256"
        if not folder.is_dir():
            return
        for shard in folder.iterdir():
            if shard.is_dir():
                yield from (p for p in shard.iterdir() if p.is_file())

    def used_bytes(self) -> int:
        """Bytes of blobs and manifests on disk (partial downloads included)."""
        total = 0
        for path in self._content_files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        folder = self.root / "manifests"
        if folder.is_dir():
            total += sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        return total

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def remove_stale_temps(self) -> int:
        """Remove temp files a killed writer left behind (not `.part`: those resume)."""
        removed = 0
        for path in self._content_files():
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
                removed += 1
        for path in (self.root / "manifests").glob(".tmp-*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed
