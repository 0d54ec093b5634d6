"""Serve a pack request (core/pack_transfer.py): many blobs of one store in one answer.

The request names blobs only by 64-hex SHA-256, each checked before any path is made from
it, so it can reach nothing but `content/sha256/<2 hex>/<64 hex>` of its store. It is
bounded (at most MAX_BLOBS hashes, a body of at most their lines) and refused whole, with
the reason, when a line is not a hash. A blob the store lacks is answered as missing
("<sha256> -"), never as an error that ends the batch.

The answer's length is known before its first byte (a stat per blob), so it is a plain
Content-Length answer that any HTTP/1.1 client or proxy can carry. Blobs of SENDFILE_MIN
bytes or more leave through sendfile; smaller ones are read in groups on a worker thread
and written from memory, since a sendfile call costs more than copying a few KiB. A blob
removed between the stat and its turn (a sweep) cannot be answered at its announced size:
the connection is closed, and the client asks again for what it did not get.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.pack_transfer import MAX_BLOBS, PACK_MEDIA_TYPE, record_head

SENDFILE_MIN = 64 * 1024
GROUP_BYTES = 1024 * 1024  # small blobs read per trip to a worker thread
MAX_BODY = MAX_BLOBS * 66  # 64 hex, an optional CR, a LF


class PackRefused(web.HTTPException):
    """A pack request refused with what was wrong and what to do (the error shape's
    message and hint)."""

    def __init__(self, status: int, message: str, hint: str) -> None:
        self.status_code = status
        super().__init__(reason=None)
        self.message, self.hint = message, hint


def pack_handler(
    root: Path, authorize: Callable[[web.Request], Awaitable[None]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The POST handler of `<prefix>/content/pack` for the store at `root`."""

    async def pack(request: web.Request) -> web.StreamResponse:
        await authorize(request)
        hashes = await _asked(request)
        sizes = await asyncio.get_running_loop().run_in_executor(None, _sizes, root, hashes)
        response = web.StreamResponse(headers={"Content-Type": PACK_MEDIA_TYPE})
        response.content_length = sum(
            len(record_head(sha, size)) + (size or 0) for sha, size in sizes
        )
        await response.prepare(request)
        await _send(request, response, root, sizes)
        await response.write_eof()
        return response

    return pack


async def _asked(request: web.Request) -> list[str]:
    """The hashes of the request body, each once, in order; or a clear refusal."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise _too_many()
    body = b""
    while len(body) <= MAX_BODY and (more := await request.content.read(MAX_BODY + 1)):
        body += more
    if len(body) > MAX_BODY:
        raise _too_many()
    hashes: dict[str, None] = {}
    for number, raw in enumerate(body.split(b"\n"), start=1):
        line = raw.strip().decode("ascii", "replace")
        if not line:
            continue
        if not is_sha256_hex(line):
            raise PackRefused(
                400,
                f"line {number} of the pack request is not a SHA-256: {line[:80]!r}",
                "send one 64-digit lower-case hex SHA-256 per line",
            )
        hashes[line] = None
    if len(hashes) > MAX_BLOBS:
        raise _too_many()
    if not hashes:
        raise PackRefused(400, "the pack request names no blob", "send one SHA-256 per line")
    return list(hashes)


def _too_many() -> PackRefused:
    return PackRefused(
        413,
        f"a pack request may name at most {MAX_BLOBS} blobs",
        "split the list into several requests",
    )


def _blob(root: Path, sha256: str) -> Path:
    return root / "content" / "sha256" / sha256[:2] / sha256


def _sizes(root: Path, hashes: list[str]) -> list[tuple[str, int | None]]:
    sizes: list[tuple[str, int | None]] = []
    for sha256 in hashes:
        try:
            sizes.append((sha256, os.stat(_blob(root, sha256)).st_size))
        except (FileNotFoundError, NotADirectoryError):
            sizes.append((sha256, None))
    return sizes


def _read_group(root: Path, group: list[tuple[str, int | None]]) -> bytes | None:
    """The records of small (or missing) blobs; None if one is gone or changed size."""
    parts: list[bytes] = []
    for sha256, size in group:
        parts.append(record_head(sha256, size))
        if size is None:
            continue
        try:
            with open(_blob(root, sha256), "rb") as handle:
                data = handle.read(size + 1)
        except FileNotFoundError:
            return None
        if len(data) != size:
            return None
        parts.append(data)
    return b"".join(parts)


Segment = tuple[list[tuple[str, int | None]], int]  # small records, or ([(sha, size)], size)


def _segments(sizes: list[tuple[str, int | None]]) -> list[Segment]:
    """Runs of small or missing blobs up to GROUP_BYTES (read on a worker thread), and
    large blobs one by one (sendfile), in the order asked."""
    segments: list[Segment] = []
    group: list[tuple[str, int | None]] = []
    grouped = 0
    for sha256, size in sizes:
        if size is not None and size >= SENDFILE_MIN:
            if group:
                segments.append((group, -1))
                group, grouped = [], 0
            segments.append(([(sha256, size)], size))
            continue
        group.append((sha256, size))
        grouped += size or 0
        if grouped >= GROUP_BYTES:
            segments.append((group, -1))
            group, grouped = [], 0
    if group:
        segments.append((group, -1))
    return segments


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    root: Path,
    sizes: list[tuple[str, int | None]],
) -> None:
    """Send the records; the next group of small blobs is read while one is being sent."""
    loop = asyncio.get_running_loop()
    segments = _segments(sizes)

    def read_ahead(index: int) -> asyncio.Future[bytes | None] | None:
        for group, large in segments[index:]:
            if large < 0:
                return loop.run_in_executor(None, _read_group, root, group)
        return None

    ahead = read_ahead(0)
    for index, (group, large) in enumerate(segments):
        if large >= 0:
            sha256 = group[0][0]
            await response.write(record_head(sha256, large))
            await _sendfile(request, response, _blob(root, sha256), large)
            continue
        data = await ahead if ahead is not None else None  # read_ahead found this group
        ahead = read_ahead(index + 1)
        if data is None:
            _cut(request)
        await response.write(data)  # type: ignore[arg-type]


async def _sendfile(
    request: web.Request, response: web.StreamResponse, path: Path, size: int
) -> None:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after an await
    except FileNotFoundError:
        _cut(request)
    with handle:
        if os.fstat(handle.fileno()).st_size != size:
            _cut(request)
        try:
            await asyncio.get_running_loop().sendfile(transport, handle, 0, size)
        except NotImplementedError:  # no sendfile here: through the writer, flow-controlled
            while chunk := handle.read(GROUP_BYTES):
                await response.write(chunk)


def _cut(request: web.Request) -> None:
    """End an answer that cannot be completed at its announced length: close the
    connection, so the client sees a short answer and asks again."""
    if request.transport is not None:
        request.transport.close()
    raise ConnectionResetError("a blob of the pack went away while it was being sent")
