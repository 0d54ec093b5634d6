"""The content library in an S3-compatible bucket (`qm site init --library s3://…`).

The layout is the folder's (`content/sha256/<2>/<64>`, `manifests/<package hash>.json`,
under the URL's prefix); the site writes with boto3 and credentials from its environment
(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or any source boto3 reads), never from
config.json. Temps and the lock that orders snapshots and sweeps stay in the home's
library/ folder: a lock cannot live in S3 (docs/operations.md says what that means for site
processes on several hosts).

Nothing half-written is visible: a snapshot stages each new content in a local temp as
always; before the PUT the temp is hashed again and must still be the content it is named
after, and an S3 PUT (or a multipart upload, completed in one call) makes an object visible
only whole. No temp key and no server-side copy are needed.

DPs keep filling from the site's `/library` (site/server.py): the site streams the object
from the bucket with the DP's Range. The bucket stays private (no anonymous reads, only
enrolled DPs read the library, as from a folder) and no DP needs the bucket's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from quartermaster.core.chunking import CHUNK_THRESHOLD
from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.hashing import CHUNK, is_sha256_hex
from quartermaster.core.s3_location import S3Location
from quartermaster.core.store_layout import blob_relpath, manifest_relpath
from quartermaster.dp.s3_store import s3_client
from quartermaster.site.content_library import ContentLibrary, Staged

WHOLE_PUT = 64 << 20  # a file up to this size is hashed and sent from memory (one read)
IMMUTABLE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"bytes=\d*-\d*")
AuthCheck = Callable[[web.Request], Awaitable[bool]]


class LibraryUnavailable(QMError):
    code = "library_unavailable"


def open_library(root: Path, url: str, chunk_threshold: int = CHUNK_THRESHOLD) -> ContentLibrary:
    """The site's library: the folder `root`, or the bucket `url` with its temps in `root`."""
    storage = BucketStorage(S3Location.parse(url)) if url else None
    return ContentLibrary(root, storage, chunk_threshold)


def bucket_of(library: ContentLibrary) -> BucketStorage | None:
    storage = library.storage
    return storage if isinstance(storage, BucketStorage) else None


def check_library_url(url: str) -> str:
    """What `qm site init --library` and `qm site serve` check before anything else: the URL,
    credentials in the environment, and that they may list, write and delete there. Returns
    the URL as stored (no secret in it)."""
    location = S3Location.parse(url)
    storage = BucketStorage(location)
    if not _has_credentials():
        raise InvalidInput(
            f"no S3 credentials for the content library {location.url()}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the site "
            "server's environment",
        )
    probe = location.key(f"tmp/probe-{uuid.uuid4().hex}")
    with storage.calls("check the content library's bucket"):
        storage.s3.head_bucket(Bucket=location.bucket)
        storage.s3.put_object(Bucket=location.bucket, Key=probe, Body=b"")
        storage.s3.delete_object(Bucket=location.bucket, Key=probe)
    return location.url()


def _has_credentials() -> bool:
    import boto3

    return boto3.session.Session().get_credentials() is not None


class BucketStorage:
    """A LibraryStorage (site/content_library.py) in a bucket."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.s3 = s3_client(location)
        self._blobs: dict[str, int] = {}  # name -> size, as last listed, kept current

    def describe(self) -> str:
        return self.location.url()

    @contextlib.contextmanager
    def calls(self, doing: str) -> Iterator[None]:
        """S3 and connection errors as one clear error (a job's reason, a command's message);
        the message names the bucket and the S3 error code, never a credential."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            raise LibraryUnavailable(
                f"could not {doing} {self.location.url()}: S3 answered {code} "
                f"({error.get('Message') or 'no message'})",
                _hint(str(code)),
            ) from None
        except BotoCoreError as exc:
            raise LibraryUnavailable(
                f"could not {doing} {self.location.url()}: {exc}",
                "check the endpoint and that the S3 server runs",
            ) from None

    # --- what the bucket holds ------------------------------------------------------------

    def _list(self, relprefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        with self.calls("list the content library"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self.location.key(relprefix)
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    found[item["Key"].rsplit("/", 1)[-1]] = int(item["Size"])
        return found

    def refresh(self) -> None:
        self._blobs = {n: s for n, s in self._list("content/sha256/").items() if is_sha256_hex(n)}

    def has_blob(self, sha256: str) -> bool:
        return sha256 in self._blobs

    def sizes(self) -> dict[str, int]:
        """Blob -> size, as last listed (`refresh`)."""
        return dict(self._blobs)

    def blob_names(self) -> list[str]:
        self.refresh()
        return sorted(self._blobs)

    def manifest_names(self) -> list[str]:
        names = self._list("manifests/")
        return sorted(n.removesuffix(".json") for n in names if n.endswith(".json"))

    # --- writing --------------------------------------------------------------------------

    def publish(self, pool: ThreadPoolExecutor, staged: list[Staged], used: set[str]) -> None:
        """Upload each staged temp under its blob's key, then remove the temp. An object is
        durable once its PUT is answered; `used` needs nothing more here."""
        list(pool.map(self._upload, staged))

    def _upload(self, item: Staged) -> None:
        key = self.location.key(blob_relpath(item.sha256))
        extra = {"ContentType": "application/octet-stream", "CacheControl": IMMUTABLE}
        with self.calls(f"upload blob {item.sha256} to"):
            if item.size <= WHOLE_PUT:
                data = item.tmp.read_bytes()
                _check(item, hashlib.sha256(data).hexdigest(), len(data))
                self.s3.put_object(Bucket=self.location.bucket, Key=key, Body=data, **extra)
            else:
                _check(item, *_hash_file(item.tmp))
                self.s3.upload_file(str(item.tmp), self.location.bucket, key, ExtraArgs=extra)
        self._blobs[item.sha256] = item.size
        item.tmp.unlink(missing_ok=True)

    def write_manifest(self, package_hash: str, data: bytes) -> None:
        with self.calls(f"write manifest {package_hash} to"):
            self.s3.put_object(
                Bucket=self.location.bucket,
                Key=self.location.key(manifest_relpath(package_hash)),
                Body=data,
                ContentType="application/json",
            )

    def delete_blob(self, sha256: str) -> int:
        with self.calls(f"delete blob {sha256} from"):
            self.s3.delete_object(
                Bucket=self.location.bucket, Key=self.location.key(blob_relpath(sha256))
            )
        return self._blobs.pop(sha256, 0)

    def delete_manifest(self, package_hash: str) -> None:
        with self.calls(f"delete manifest {package_hash} from"):
            self.s3.delete_object(
                Bucket=self.location.bucket, Key=self.location.key(manifest_relpath(package_hash))
            )

    # --- reading (the site's /library for DPs) ---------------------------------------------

    def get(self, relpath: str, byte_range: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.location.bucket, "Key": self.location.key(relpath)}
        if byte_range:
            args["Range"] = byte_range
        return dict(self.s3.get_object(**args))


def _check(item: Staged, sha256: str, size: int) -> None:
    if (sha256, size) != (item.sha256, item.size):
        raise LibraryUnavailable(
            f"the staged copy of blob {item.sha256} changed on the site's disk before upload "
            f"(now {sha256}, {size} bytes); nothing was uploaded",
            "check the site's disk; then run the snapshot again",
        )


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _hint(code: str) -> str:
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            "the credentials in the site server's environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) are refused or may not write there"
        )
    if code in ("404", "NoSuchBucket"):
        return "create the bucket first, or correct the bucket name in the s3:// URL"
    return "check the bucket, the endpoint and the credentials"


# --- the site's /library route, streamed from the bucket ------------------------------------


def add_library_routes(app: web.Application, bucket: BucketStorage, auth: AuthCheck) -> None:
    """`/library/content/sha256/<2>/<64>` and `/library/manifests/<64>.json` as a library
    folder would serve them (to enrolled DPs only), read from the bucket with the request's
    Range; the request's ID, access line and metrics are the content server's."""

    async def blob(request: web.Request) -> web.StreamResponse:
        shard, digest = request.match_info["shard"], request.match_info["digest"]
        if digest[:2] != shard:
            raise web.HTTPNotFound()
        await _authorize(auth, request)
        return await _stream(request, bucket, blob_relpath(digest), digest)

    async def manifest(request: web.Request) -> web.StreamResponse:
        await _authorize(auth, request)
        return await _stream(request, bucket, manifest_relpath(request.match_info["h"]), "")

    app.router.add_get("/library/content/sha256/{shard:[0-9a-f]{2}}/{digest:[0-9a-f]{64}}", blob)
    app.router.add_get("/library/manifests/{h:[0-9a-f]{64}}.json", manifest)


async def _authorize(auth: AuthCheck, request: web.Request) -> None:
    if not await auth(request):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})


def _asked_range(request: web.Request, sha256: str) -> str | None:
    """The Range to pass on: one well-formed range whose If-Range (if any) is this blob."""
    asked = (request.headers.get("Range") or "").strip()
    if_range = request.headers.get("If-Range")
    if not _RANGE.fullmatch(asked) or asked == "bytes=-":
        return None
    if if_range is not None and if_range.strip() != f'"{sha256}"':
        return None
    return asked


async def _stream(
    request: web.Request, bucket: BucketStorage, relpath: str, sha256: str
) -> web.StreamResponse:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = await asyncio.to_thread(bucket.get, relpath, _asked_range(request, sha256))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            raise web.HTTPNotFound() from None
        if code == "InvalidRange":
            raise web.HTTPRequestRangeNotSatisfiable() from None
        raise web.HTTPServiceUnavailable(reason="the library's bucket refused") from None
    except BotoCoreError:
        raise web.HTTPServiceUnavailable(reason="the library's bucket did not answer") from None
    headers = {"Content-Length": str(answer["ContentLength"]), "Cache-Control": IMMUTABLE}
    headers["Content-Type"] = "application/octet-stream" if sha256 else "application/json"
    if sha256:
        headers["ETag"] = f'"{sha256}"'
        headers["Accept-Ranges"] = "bytes"
    if answer.get("ContentRange"):
        headers["Content-Range"] = answer["ContentRange"]
    response = web.StreamResponse(status=206 if "Content-Range" in headers else 200)
    response.headers.update(headers)
    body = answer["Body"]
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
    finally:
        await asyncio.to_thread(body.close)
    return response


def library_description(library: ContentLibrary) -> str:
    """For `qm site status` and backups: a path or an s3:// URL, never a credential."""
    return library.storage.describe()
