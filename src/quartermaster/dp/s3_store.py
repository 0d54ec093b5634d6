"""A DP store in an S3-compatible bucket: the same layout, served by the bucket's endpoint.

    s3://BUCKET/PREFIX?endpoint=http://host:port[&region=REGION]   (core/s3_location.py)

The DP agent writes with the S3 API (boto3; credentials from the environment:
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or any other source boto3 reads). Clients read
with plain HTTP GET and Range from `ENDPOINT/BUCKET/PREFIX/content/sha256/<2>/<64>` (or a CDN
in front of it): they need no S3 credentials, only a bucket that allows anonymous reads, and
they verify every byte by its hash as they do from any DP.

A blob reaches the bucket only after its bytes were verified: it is pulled into a local
staging folder (`.part`, resumable, hashed) and uploaded from there under its final key. An
object in a bucket is never half-written, so no temp key is needed. Validation re-reads every
object and hashes it; a bad one is deleted, so the agent fetches and uploads it again, and the
site offers the DP again only once it reports the version validated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from quartermaster.core.blob_transfer import BlobFetcher, Progress
from quartermaster.core.errors import IntegrityError, NotFound
from quartermaster.core.hashing import CHUNK, is_sha256_hex
from quartermaster.core.s3_location import S3Location
from quartermaster.core.store_layout import CONTENT_FOLDER, blob_relpath, manifest_relpath
from quartermaster.dp.store import BlobFetchOutcome, CancelCheck, DPStore, GCResult

UNBOUNDED = 2**62


class S3Store(DPStore):
    """A DPStore whose blobs and manifests live in a bucket; `staging` holds transfers."""

    takes_packs = False  # each blob is uploaded by fetch_blob

    def __init__(self, location: S3Location, staging: Path) -> None:
        super().__init__(staging)
        self.location = location
        self.s3 = s3_client(location)
        self._blobs: dict[str, int] | None = None  # name -> size, listed once, kept current
        self._manifests: set[str] | None = None

    # --- what the bucket holds ----------------------------------------------------------

    def _list(self, relprefix: str) -> Iterator[tuple[str, int]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.key(relprefix)
        )
        for page in pages:
            for item in page.get("Contents", ()):
                yield item["Key"].rsplit("/", 1)[-1], int(item["Size"])

    def refresh(self) -> None:
        """Read what the bucket holds again (each cycle, from `held_versions`)."""
        self._blobs = self._manifests = None
        self._held_blobs()
        self._held_manifests()

    def _held_blobs(self) -> dict[str, int]:
        if self._blobs is None:
            self._blobs = {n: s for n, s in self._list(f"{CONTENT_FOLDER}/") if is_sha256_hex(n)}
        return self._blobs

    def _held_manifests(self) -> set[str]:
        if self._manifests is None:
            names = (n for n, _ in self._list("manifests/") if n.endswith(".json"))
            self._manifests = {n.removesuffix(".json") for n in names}
        return self._manifests

    def has_blob(self, sha256: str) -> bool:
        return sha256 in self._held_blobs()

    def has_manifest(self, package_hash: str) -> bool:
        return package_hash in self._held_manifests()

    def held_versions(self) -> list[str]:
        self.refresh()
        return sorted(h for h in self._held_manifests() if is_sha256_hex(h))

    # --- manifests ----------------------------------------------------------------------

    def write_manifest(self, package_hash: str, envelope: bytes) -> None:
        self.s3.put_object(
            Bucket=self.location.bucket,
            Key=self.location.key(manifest_relpath(package_hash)),
            Body=envelope,
            ContentType="application/json",
        )
        self._held_manifests().add(package_hash)

    def remove_manifest(self, package_hash: str) -> None:
        self._delete(manifest_relpath(package_hash))
        self._held_manifests().discard(package_hash)

    def read_envelope(self, package_hash: str) -> dict[str, Any]:
        try:
            data = self._get(manifest_relpath(package_hash)).read()
        except self.s3.exceptions.NoSuchKey:
            raise NotFound(f"manifest {package_hash} is not in the bucket") from None
        try:
            envelope = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(
                f"manifest {package_hash} in the bucket is not JSON: {exc}"
            ) from None
        if not isinstance(envelope, dict):
            raise IntegrityError(f"manifest {package_hash} in the bucket is not an envelope")
        return envelope

    # --- blobs --------------------------------------------------------------------------

    def fetch_blob(
        self,
        fetcher: BlobFetcher,
        sources: Sequence[str],
        sha256: str,
        size: int,
        on_progress: Progress | None = None,
    ) -> BlobFetchOutcome:
        """Pull into staging (verified, resumable), then upload under the final key."""
        if self.has_blob(sha256):
            return BlobFetchOutcome(sha256, "")
        outcome = super().fetch_blob(fetcher, sources, sha256, size, on_progress)
        staged = self.blob_path(sha256)
        self.upload(staged, sha256)
        staged.unlink(missing_ok=True)
        return outcome

    def upload(self, path: Path, sha256: str) -> None:
        """Upload a verified local file as blob `sha256` (immutable: its name is its hash)."""
        with open(path, "rb") as body:
            self.s3.put_object(
                Bucket=self.location.bucket,
                Key=self.location.key(blob_relpath(sha256)),
                Body=body,
                ContentType="application/octet-stream",
                CacheControl="public, max-age=31536000, immutable",
            )
        self._held_blobs()[sha256] = path.stat().st_size

    def _blob_is_good(self, sha256: str, size: int) -> bool:
        """Re-read the object and hash it; a bad one is deleted, to be fetched again."""
        try:
            body = self._get(blob_relpath(sha256))
        except self.s3.exceptions.NoSuchKey:
            self._held_blobs().pop(sha256, None)
            return True  # nothing bad is held; a missing blob is simply fetched
        digest, actual_size = hashlib.sha256(), 0
        with contextlib.closing(body):
            while chunk := body.read(CHUNK):
                digest.update(chunk)
                actual_size += len(chunk)
        if digest.hexdigest() == sha256 and actual_size == size:
            return True
        self._delete(blob_relpath(sha256))
        self._held_blobs().pop(sha256, None)
        return False

    def validate(self, package_hashes: Any, cancel: CancelCheck | None = None) -> list[str]:
        self.refresh()
        return super().validate(package_hashes, cancel)

    def gc(self, keep: Collection[str]) -> GCResult:
        """Delete manifests not in `keep`, and every object no kept version uses."""
        result = GCResult()
        for package_hash in self.held_versions():
            if package_hash not in keep:
                self.remove_manifest(package_hash)
                result.removed_versions.append(package_hash)
        used = set(self._blobs_of(h for h in keep if is_sha256_hex(h)))
        for sha256, size in list(self._held_blobs().items()):
            if sha256 not in used:
                self._delete(blob_relpath(sha256))
                del self._held_blobs()[sha256]
                result.removed_blobs += 1
                result.freed_bytes += size
        for path in self._content_files():  # staging: .part files of blobs no longer used
            if path.name.removesuffix(".part") not in used:
                path.unlink(missing_ok=True)
        return result

    def used_bytes(self) -> int:
        return sum(self._held_blobs().values())

    def free_bytes(self) -> int:
        """A bucket has no fixed size (a quota, if any, fails an upload): the largest amount
        the DP report carries."""
        return UNBOUNDED

    # --- S3 calls -----------------------------------------------------------------------

    def _get(self, relpath: str) -> Any:
        answer = self.s3.get_object(Bucket=self.location.bucket, Key=self.location.key(relpath))
        return answer["Body"]

    def _delete(self, relpath: str) -> None:
        self.s3.delete_object(Bucket=self.location.bucket, Key=self.location.key(relpath))


def s3_client(location: S3Location) -> Any:
    """A boto3 client for the bucket's endpoint, credentials from the environment. Here, not
    in core/: the client agent's distribution ships core/ and has no boto3."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise NotFound(
            "an s3:// store needs boto3, which is not installed",
            "pip install 'quartermaster[s3]' (or boto3)",
        ) from None
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client(
        "s3", endpoint_url=location.endpoint, region_name=location.region, config=config
    )
