"""Fetch one content-addressed blob over HTTP: resume, hash while streaming, never overrun.

This is the data path shared by the client agent and distribution points. On large blobs
receiving and hashing use two cores (socket reads, file writes and `hashlib` on large
buffers all release the GIL): a helper thread hashes what the calling thread received one
chunk before. The transfer keeps a `.part` file so an interrupted transfer resumes with a
Range request, stops at the size the manifest gives (endless-data attack), and renames the
file into place only once its SHA-256 matched.

Durability is the caller's choice. `durable=True` (distribution points, whose store is
served as it is) fsyncs the blob and its folder before `fetch` returns, and the `.part`
file only ever holds bytes received, so a transfer resumes even after the process was
killed: bytes go into a small ring of reused buffers and are written from there.
`durable=False` (the client cache) leaves write-back to the kernel: the caller must then
record the blob as not yet durable before fetching and make it durable, or re-verify it,
later (see `client/cache.py`). Large blobs are then received straight into the `.part`
file's mapped pages (one copy fewer, no write calls), the file reserved at its full size
first; a transfer stopped by an error or a signal handler cuts the file back and resumes,
one whose process was killed leaves a full-size `.part`, which is not trusted: it starts
again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import mmap
import os
import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urlsplit

from quartermaster.core.durable_files import fsync_path, write_all
from quartermaster.core.errors import HashMismatch, IntegrityError, QMError
from quartermaster.core.hashing import CHUNK


class TransferError(QMError):
    """The source could not be reached or answered wrongly (not a content mismatch)."""

    code = "transfer_failed"
    http_status = 502


@dataclass
class FetchResult:
    bytes_transferred: int  # bytes received over the network in this call
    resumed_from: int  # bytes already present in the .part file


Progress = Callable[[int], None]

RING = 3  # buffers in flight: one being received, one being hashed, one spare
PIPELINE_MIN = 2 * CHUNK  # below this a helper thread costs more than it saves


class BlobFetcher:
    """Keeps one connection per origin and one ring of buffers; not thread-safe (one per
    worker)."""

    def __init__(
        self,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.headers = dict(headers or {})
        self._buffers = [bytearray(CHUNK) for _ in range(RING)]
        self._buffer = self._buffers[0]
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def _connection(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        conn = self._connections.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._connections[key] = conn
        return conn

    def _drop(self, scheme: str, host: str, port: int) -> None:
        conn = self._connections.pop((scheme, host, port), None)
        if conn is not None:
            conn.close()

    def fetch(
        self,
        url: str,
        dest: Path,
        sha256: str,
        size: int,
        on_progress: Progress | None = None,
        durable: bool = True,
    ) -> FetchResult:
        """Download `url` to `dest` if its bytes hash to `sha256`; resume a prior `.part`.

        With `durable=False` nothing is fsynced: the caller owns the blob's durability.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransferError(f"unsupported URL {url!r}", "a DP URL is http:// or https://")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        partial = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, have = self._resume_state(partial, size)
        try:
            return self._transfer(
                origin,
                target,
                url,
                dest,
                partial,
                digest,
                have,
                sha256,
                size,
                on_progress,
                durable,
            )
        except (OSError, http.client.HTTPException) as exc:
            self._drop(*origin)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TransferError(
                    f"{dest.parent}: no space left for {size} bytes ({exc.strerror})",
                    "free disk space there; the transfer resumes from where it stopped",
                ) from exc
            raise TransferError(
                f"{url}: {exc.__class__.__name__}: {exc}",
                "the source is unreachable or dropped the connection; "
                "the transfer resumes from where it stopped",
            ) from exc

    def _resume_state(self, partial: Path, size: int) -> tuple[hashlib._Hash, int]:
        digest = hashlib.sha256()
        try:
            have = partial.stat().st_size
        except FileNotFoundError:
            return digest, 0
        if have >= size:  # a full or overlong leftover is not trusted: start again
            partial.unlink()
            return digest, 0
        view = memoryview(self._buffer)
        with open(partial, "rb", buffering=0) as handle:
            while n := handle.readinto(view):  # type: ignore[attr-defined]
                digest.update(view[:n])
        return digest, have

    def _transfer(
        self,
        origin: tuple[str, str, int],
        target: str,
        url: str,
        dest: Path,
        partial: Path,
        digest: hashlib._Hash,
        have: int,
        sha256: str,
        size: int,
        on_progress: Progress | None,
        durable: bool,
    ) -> FetchResult:
        conn = self._connection(*origin)
        headers = dict(self.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        resumed_from = have
        if response.status == 206 and have:
            if not response.getheader("Content-Range", "").startswith(f"bytes {have}-"):
                response.close()
                self._drop(*origin)
                raise TransferError(
                    f"{url}: the server answered a Range request with another range"
                )
            mode = "r+b"
        elif response.status == 200:
            digest, have, resumed_from, mode = hashlib.sha256(), 0, 0, "w+b"
        else:
            response.read()
            raise TransferError(
                f"{url}: HTTP {response.status} {response.reason}",
                "the source does not hold this blob",
            )
        length = response.getheader("Content-Length")
        if length is not None and have + int(length) > size:
            response.close()
            self._drop(*origin)
            raise IntegrityError(
                f"{url}: the server offers {have + int(length)} bytes, the manifest says {size}",
                "refusing to download more than the manifest size",
            )
        with open(partial, mode, buffering=0) as handle:
            handle.seek(have)
            if size - have < PIPELINE_MIN:
                received = self._receive(response, handle, digest, size - have, on_progress)
            elif durable or not hasattr(os, "posix_fallocate"):
                received = self._receive_pipelined(
                    response, handle, digest, size - have, on_progress
                )
            else:
                received = self._receive_mapped(response, handle, digest, have, size, on_progress)
            have += received
            if have < size:
                if durable:  # what was received stays for a resume
                    os.fsync(handle.fileno())
                self._drop(*origin)
                raise TransferError(
                    f"{url}: connection closed after {have} of {size} bytes",
                    "the transfer resumes from there next time",
                )
            if response.read(1):  # more bytes than the manifest size
                response.close()
                self._drop(*origin)
                handle.close()
                partial.unlink()
                raise IntegrityError(
                    f"{url}: the server sent more than the manifest size of {size} bytes",
                    "refusing endless data",
                )
            actual = digest.hexdigest()
            if actual != sha256:
                handle.close()
                partial.unlink()
                raise HashMismatch(url, sha256, actual)
            if durable:
                os.fsync(handle.fileno())
        if response.will_close:
            self._drop(*origin)
        os.replace(partial, dest)
        if durable:
            fsync_path(dest.parent)
        return FetchResult(received, resumed_from)

    def _receive(
        self,
        response: http.client.HTTPResponse,
        handle: IO[Any],
        digest: hashlib._Hash,
        limit: int,
        on_progress: Progress | None,
    ) -> int:
        """Receive, hash and write up to `limit` bytes on this thread; returns bytes received."""
        view = memoryview(self._buffer)
        received = 0
        while received < limit:
            n = response.readinto(view[: min(len(view), limit - received)])
            if not n:
                break
            chunk = view[:n]
            digest.update(chunk)
            write_all(handle, chunk)
            received += n
            if on_progress is not None:
                on_progress(n)
        return received

    def _receive_pipelined(
        self,
        response: http.client.HTTPResponse,
        handle: IO[Any],
        digest: hashlib._Hash,
        limit: int,
        on_progress: Progress | None,
    ) -> int:
        """As `_receive`, with hashing on a helper thread one buffer behind the receiver.

        A buffer goes back to the receiver only after it was written and hashed.
        """
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for buffer in self._buffers:
            free.put(buffer)

        def give_back(chunk: memoryview) -> None:
            free.put(cast(bytearray, chunk.obj))  # the whole buffer the chunk is a part of

        received = 0
        with _hashed_behind(digest, give_back) as hash_later:
            while received < limit:
                view = memoryview(free.get())
                n = response.readinto(view[: min(len(view), limit - received)])
                if not n:
                    break
                write_all(handle, view[:n])
                hash_later(view[:n])
                received += n
                if on_progress is not None:
                    on_progress(n)
        return received

    def _receive_mapped(
        self,
        response: http.client.HTTPResponse,
        handle: IO[Any],
        digest: hashlib._Hash,
        have: int,
        size: int,
        on_progress: Progress | None,
    ) -> int:
        """As `_receive_pipelined`, into the file's mapped pages instead of a buffer.

        The file is reserved at its full size before it is mapped, so a full disk is an
        error here and never a SIGBUS on a page fault; if the transfer stops short it is cut
        back to what was received and hashed.
        """
        fd = handle.fileno()
        os.ftruncate(fd, size)  # at once: a kill from here on leaves an untrusted full size
        try:
            os.posix_fallocate(fd, have, size - have)
        except OSError:
            os.ftruncate(fd, have)
            raise
        mapped = mmap.mmap(fd, size)
        view = memoryview(mapped)
        offset = have
        try:
            with _hashed_behind(digest) as hash_later:
                while offset < size:
                    n = response.readinto(view[offset : min(size, offset + CHUNK)])
                    if not n:
                        break
                    hash_later(view[offset : offset + n])
                    offset += n
                    if on_progress is not None:
                        on_progress(n)
        finally:
            view.release()
            with contextlib.suppress(BufferError):  # a slice still held by a traceback
                mapped.close()
            if offset < size:
                os.ftruncate(fd, offset)
        return offset - have


@contextlib.contextmanager
def _hashed_behind(
    digest: hashlib._Hash, hashed: Callable[[memoryview], None] | None = None
) -> Iterator[Callable[[memoryview], None]]:
    """Hash, in order on a helper thread, each chunk handed to the function this yields;
    `hashed` then gets the chunk back. The helper is joined on leaving, also on an error, so
    `digest` then covers exactly the chunks handed over."""
    filled: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()

    def hash_filled() -> None:
        while (chunk := filled.get()) is not None:
            digest.update(chunk)
            if hashed is not None:
                hashed(chunk)

    hasher = threading.Thread(target=hash_filled, name="blob-hash", daemon=True)
    hasher.start()
    try:
        yield filled.put
    finally:
        filled.put(None)
        hasher.join()


def discard_partial(dest: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        dest.with_name(dest.name + ".part").unlink()
