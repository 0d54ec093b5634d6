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

Proxies are those of the environment, as for the site's API (`core.proxies`): an https
source is reached through a CONNECT tunnel, with TLS to the source itself and the caller's
CAs, an http source with an absolute-form request to the proxy. The bytes path is the same.
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
from quartermaster.core.proxies import Proxy, ProxySettings


class TransferError(QMError):
    """The source could not be reached or answered wrongly (not a content mismatch)."""

    code = "transfer_failed"
    http_status = 502


class NoSpace(TransferError):
    """The receiving disk is full: no other source will do better until space is freed."""

    code = "no_space"
    http_status = 507


@dataclass
class FetchResult:
    bytes_transferred: int  # bytes received over the network in this call
    resumed_from: int  # bytes already present in the .part file


Progress = Callable[[int], None]

RING = 3  # buffers in flight: one being received, one being hashed, one spare
PIPELINE_MIN = 2 * CHUNK  # below this a helper thread costs more than it saves


@dataclass(frozen=True)
class Origin:
    """Where a connection goes: one is kept open per origin."""

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BlobRequest:
    """One blob to fetch: its source (and the proxy on the way), its place, what it must be."""

    url: str
    origin: Origin
    target: str  # path and query, as the origin sees them
    dest: Path
    sha256: str
    size: int
    proxy: Proxy | None = None
    durable: bool = True
    on_progress: Progress | None = None

    @classmethod
    def parse(
        cls,
        url: str,
        dest: Path,
        sha256: str,
        size: int,
        *,
        proxy: Proxy | None = None,
        durable: bool = True,
        on_progress: Progress | None = None,
    ) -> BlobRequest:
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or not port:
            raise TransferError(f"unsupported URL {url!r}", "a DP URL is http:// or https://")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        origin = Origin(parts.scheme, parts.hostname, port)
        return cls(url, origin, target, dest, sha256, size, proxy, durable, on_progress)

    @property
    def partial(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def source(self) -> str:
        """The URL, and the proxy if one is on the way: what messages name."""
        return f"{self.url} through {self.proxy}" if self.proxy is not None else self.url

    @property
    def proxy_headers(self) -> dict[str, str]:
        """Credentials for an http proxy (a CONNECT tunnel sends them once, when it opens)."""
        if self.proxy is None or self.origin.scheme != "http" or not self.proxy.authorization:
            return {}
        return {"Proxy-Authorization": self.proxy.authorization}

    @property
    def request_target(self) -> str:
        """Origin form to the origin or in a CONNECT tunnel; absolute form to an http proxy."""
        if self.proxy is not None and self.origin.scheme == "http":
            return f"http://{self.origin.netloc}{self.target}"
        return self.target


@dataclass
class _Body:
    """The source's answer being received: where its first byte goes and the hash so far."""

    response: http.client.HTTPResponse
    offset: int  # position in the blob of the response's first byte
    digest: hashlib._Hash  # covers the blob's bytes before `offset`
    mode: str  # how the .part file is opened: "r+b" resumes it, "w+b" starts it again


class TransferStopped(QMError):
    """Raised by an `on_progress` callback to stop a transfer between two chunks: what was
    received stays in the `.part` file, and the next fetch resumes from it."""

    code = "transfer_stopped"


class BlobFetcher:
    """Keeps one connection per origin and one ring of buffers; not thread-safe (one per
    worker). Proxies come from the environment (`core.proxies`) unless `proxies` is given."""

    def __init__(
        self,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
        proxies: ProxySettings | None = None,
        headers_scope: str = "",
    ) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.headers = dict(headers or {})
        # `headers` (a credential) go only to URLs below this base URL; "" sends them to all
        self.headers_scope = headers_scope
        self.proxies = ProxySettings.from_environment() if proxies is None else proxies
        self._ring: list[bytearray] = []  # allocated at the first transfer: an idle agent
        self._connections: dict[Origin, http.client.HTTPConnection] = {}

    @property
    def _buffers(self) -> list[bytearray]:
        """RING buffers of CHUNK bytes, made when first needed (12 MiB an idle poll does not
        need)."""
        if not self._ring:
            self._ring = [bytearray(CHUNK) for _ in range(RING)]
        return self._ring

    @property
    def _buffer(self) -> bytearray:
        return self._buffers[0]

    @property
    def buffer(self) -> bytearray:
        """A CHUNK-sized buffer to receive into (core.pack_transfer shares it)."""
        return self._buffer

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
        """POST `body` on the origin's kept connection (proxy and credential scope as for a
        GET); the caller reads the answer to its end or calls `drop(url)`."""
        request = BlobRequest.parse(url, Path(), "", 0, proxy=self.proxies.proxy_for(url))
        sent = {**self._scoped_headers(url), **headers, **request.proxy_headers}
        try:
            return self._send(request, sent, "POST", body)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(request.origin)
            raise _failure(request, exc) from exc

    def drop(self, url: str) -> None:
        """Close the connection to `url`'s origin (an answer not read to its end)."""
        self._drop(BlobRequest.parse(url, Path(), "", 0).origin)

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

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
        request = BlobRequest.parse(
            url,
            dest,
            sha256,
            size,
            proxy=self.proxies.proxy_for(url),
            durable=durable,
            on_progress=on_progress,
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, have = self._resume_state(request.partial, size)
        try:
            return self._transfer(request, digest, have)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(request.origin)
            raise _failure(request, exc) from exc
        except TransferStopped:  # the answer was not read to its end: the connection goes
            self._drop(request.origin)
            raise

    def _connection(self, request: BlobRequest) -> http.client.HTTPConnection:
        conn = self._connections.get(request.origin)
        if conn is None:
            conn = self._connections[request.origin] = self._open(request.origin, request.proxy)
        return conn

    def _open(self, origin: Origin, proxy: Proxy | None) -> http.client.HTTPConnection:
        """A connection to `origin`: direct, through a CONNECT tunnel (https behind a proxy:
        TLS still runs with the origin, checked against our CAs), or to an http proxy."""
        host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
        if origin.scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        conn = http.client.HTTPSConnection(
            host, port, timeout=self.timeout, context=self.ssl_context
        )
        if proxy is not None:
            auth = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            conn.set_tunnel(origin.host, origin.port, headers=auth)
        return conn

    def _drop(self, origin: Origin) -> None:
        conn = self._connections.pop(origin, None)
        if conn is not None:
            conn.close()

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

    def _transfer(self, request: BlobRequest, digest: hashlib._Hash, have: int) -> FetchResult:
        """Ask, receive into the .part file, check, then rename it into place."""
        body = self._ask(request, digest, have)
        with open(request.partial, body.mode, buffering=0) as handle:
            handle.seek(body.offset)
            received = self._receive_body(request, body, handle)
            self._check_received(request, body, handle, body.offset + received)
        if body.response.will_close:
            self._drop(request.origin)
        os.replace(request.partial, request.dest)
        if request.durable:
            fsync_path(request.dest.parent)
        return FetchResult(received, body.offset)

    def _ask(self, request: BlobRequest, digest: hashlib._Hash, have: int) -> _Body:
        """Send the GET (a Range from `have` on to resume) and check the answer's head."""
        headers = self._scoped_headers(request.url)
        if have:
            headers["Range"] = f"bytes={have}-"
        headers.update(request.proxy_headers)
        body = self._body(request, self._send(request, headers), digest, have)
        length = body.response.getheader("Content-Length")
        if length is not None and body.offset + int(length) > request.size:
            self._abandon(request, body.response)
            raise IntegrityError(
                f"{request.source}: the server offers {body.offset + int(length)} bytes, "
                f"the manifest says {request.size}",
                "refusing to download more than the manifest size",
            )
        return body

    def _scoped_headers(self, url: str) -> dict[str, str]:
        """The caller's headers (a credential) if `url` is within their scope, else none."""
        scope = self.headers_scope.rstrip("/") + "/"
        in_scope = not self.headers_scope or url.startswith(scope)
        return dict(self.headers) if in_scope else {}

    def _send(
        self,
        request: BlobRequest,
        headers: dict[str, str],
        method: str = "GET",
        body: bytes | None = None,
    ) -> http.client.HTTPResponse:
        """A request on the origin's kept connection. One that the other end closed while it
        was idle (a time-out, a proxy that keeps no connection) is replaced once by a new
        one."""
        conn = self._connection(request)
        kept = conn.sock is not None
        try:
            conn.request(method, request.request_target, body=body, headers=headers)
            return conn.getresponse()
        except ConnectionError:
            if not kept:
                raise
        self._drop(request.origin)
        conn = self._connection(request)
        conn.request(method, request.request_target, body=body, headers=headers)
        return conn.getresponse()

    def _body(
        self,
        request: BlobRequest,
        response: http.client.HTTPResponse,
        digest: hashlib._Hash,
        have: int,
    ) -> _Body:
        """Resume what the .part holds if the source answered the Range; else start again."""
        if response.status == 206 and have:
            if not response.getheader("Content-Range", "").startswith(f"bytes {have}-"):
                self._abandon(request, response)
                raise TransferError(
                    f"{request.source}: the server answered a Range request with another range"
                )
            return _Body(response, have, digest, "r+b")
        if response.status == 200:
            return _Body(response, 0, hashlib.sha256(), "w+b")
        response.read()
        raise TransferError(
            f"{request.source}: HTTP {response.status} {response.reason}",
            "the source does not hold this blob"
            + (f"; or {request.proxy} refused the request" if request.proxy else ""),
        )

    def _receive_body(self, request: BlobRequest, body: _Body, handle: IO[Any]) -> int:
        """Receive the rest of the blob on the path that suits its size; returns bytes got."""
        if request.size - body.offset < PIPELINE_MIN:
            return self._receive(request, body, handle)
        if request.durable or not hasattr(os, "posix_fallocate"):
            return self._receive_pipelined(request, body, handle)
        return self._receive_mapped(request, body, handle)

    def _check_received(
        self, request: BlobRequest, body: _Body, handle: IO[Any], have: int
    ) -> None:
        """All of the blob, nothing more, and the right hash; fsynced if durable."""
        if have < request.size:
            if request.durable:  # what was received stays for a resume
                os.fsync(handle.fileno())
            self._drop(request.origin)
            raise TransferError(
                f"{request.source}: connection closed after {have} of {request.size} bytes",
                "the transfer resumes from there next time",
            )
        if body.response.read(1):  # more bytes than the manifest size
            self._abandon(request, body.response)
            handle.close()
            request.partial.unlink()
            raise IntegrityError(
                f"{request.source}: the server sent more than the manifest size of "
                f"{request.size} bytes",
                "refusing endless data",
            )
        actual = body.digest.hexdigest()
        if actual != request.sha256:
            handle.close()
            request.partial.unlink()
            raise HashMismatch(request.url, request.sha256, actual)
        if request.durable:
            os.fsync(handle.fileno())

    def _abandon(self, request: BlobRequest, response: http.client.HTTPResponse) -> None:
        """Stop reading an answer we refuse; its connection cannot carry another request."""
        response.close()
        self._drop(request.origin)

    def _receive(self, request: BlobRequest, body: _Body, handle: IO[Any]) -> int:
        """Receive, hash and write the rest on this thread; returns bytes received."""
        response, digest, on_progress = body.response, body.digest, request.on_progress
        limit = request.size - body.offset
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

    def _receive_pipelined(self, request: BlobRequest, body: _Body, handle: IO[Any]) -> int:
        """As `_receive`, with hashing on a helper thread one buffer behind the receiver.

        A buffer goes back to the receiver only after it was written and hashed.
        """
        response, on_progress = body.response, request.on_progress
        limit = request.size - body.offset
        free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for buffer in self._buffers:
            free.put(buffer)

        def give_back(chunk: memoryview) -> None:
            free.put(cast(bytearray, chunk.obj))  # the whole buffer the chunk is a part of

        received = 0
        with _hashed_behind(body.digest, give_back) as hash_later:
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

    def _receive_mapped(self, request: BlobRequest, body: _Body, handle: IO[Any]) -> int:
        """As `_receive_pipelined`, into the file's mapped pages instead of a buffer.

        The file is reserved at its full size before it is mapped, so a full disk is an
        error here and never a SIGBUS on a page fault; if the transfer stops short it is cut
        back to what was received and hashed.
        """
        response, on_progress = body.response, request.on_progress
        have, size = body.offset, request.size
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
            with _hashed_behind(body.digest) as hash_later:
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


def _failure(request: BlobRequest, exc: OSError | http.client.HTTPException) -> TransferError:
    """What went wrong on the way (the disk, the source, the proxy), said so a user can act."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(
            f"{request.dest.parent}: no space left for {request.size} bytes ({exc.strerror})",
            "free disk space there; the transfer resumes from where it stopped",
        )
    hint = "the source is unreachable or dropped the connection"
    if request.proxy is not None:
        hint = (
            f"the source or {request.proxy} is unreachable or dropped the connection; "
            f"check {request.proxy.variable} and NO_PROXY"
        )
    return TransferError(
        f"{request.source}: {exc.__class__.__name__}: {exc}",
        hint + "; the transfer resumes from where it stopped",
    )


def discard_partial(dest: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        dest.with_name(dest.name + ".part").unlink()
