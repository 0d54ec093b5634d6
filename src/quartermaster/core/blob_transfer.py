"""Fetch one content-addressed blob over HTTP: resume, hash while streaming, never overrun.

This is the data path shared by the client agent and distribution points. It reads into one
reused buffer, hashes that buffer and writes that same buffer (no per-chunk allocation), keeps
a `.part` file so an interrupted transfer resumes with a Range request, stops at the size the
manifest gives (endless-data attack), and renames the file into place only once its SHA-256
matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from quartermaster.core.durable_files import fsync_dir
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


class BlobFetcher:
    """Keeps one connection per origin and one buffer; not thread-safe (one per worker)."""

    def __init__(
        self,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.headers = dict(headers or {})
        self._buffer = bytearray(CHUNK)
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
        self, url: str, dest: Path, sha256: str, size: int, on_progress: Progress | None = None
    ) -> FetchResult:
        """Download `url` to `dest` if its bytes hash to `sha256`; resume a prior `.part`."""
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
                origin, target, url, dest, partial, digest, have, sha256, size, on_progress
            )
        except (OSError, http.client.HTTPException) as exc:
            self._drop(*origin)
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
            mode = "ab"
        elif response.status == 200:
            digest, have, resumed_from, mode = hashlib.sha256(), 0, 0, "wb"
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
        view = memoryview(self._buffer)
        received = 0
        with open(partial, mode, buffering=0) as handle:
            while have < size:
                want = min(len(view), size - have)
                n = response.readinto(view[:want])
                if not n:
                    break
                chunk = view[:n]
                digest.update(chunk)
                handle.write(chunk)
                have += n
                received += n
                if on_progress is not None:
                    on_progress(n)
            if have < size:
                handle.flush()
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
            os.fsync(handle.fileno())
        if response.will_close:
            self._drop(*origin)
        os.replace(partial, dest)
        fsync_dir(dest.parent)
        return FetchResult(received, resumed_from)


def discard_partial(dest: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        dest.with_name(dest.name + ".part").unlink()
