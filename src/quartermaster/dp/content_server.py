"""The data plane: serve store folders over HTTP with sendfile, Range and strict paths.

One aiohttp application can serve several stores under URL prefixes ("" for a DP's store,
"/library" for the site's content library). Only the two store shapes are routable
(`content/sha256/<2 hex>/<64 hex>` and `manifests/<64 hex>.json`), so temp and `.part`
files, traversal attempts and anything else are 404 by construction; the one other route,
POST `content/pack` (dp/pack_server.py), names blobs only by checked SHA-256. Bytes leave through
`web.FileResponse`, which hands the file to the kernel (sendfile) and never compresses here.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import re
import signal
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quartermaster.core.errors import QMError
from quartermaster.core.logging_setup import (
    REQUEST_ID_HEADER,
    accept_request_id,
    bind_request_id,
    unbind_request_id,
)
from quartermaster.core.pack_transfer import PACK_ROUTE
from quartermaster.dp.metrics import DPMetrics
from quartermaster.dp.pack_server import PackRefused, pack_handler

AuthCheck = Callable[[web.Request], Awaitable[bool]]
IMMUTABLE = "public, max-age=31536000, immutable"
_MOUNT_KEY = web.AppKey("quartermaster_mounts", list)
METRICS_KEY = web.AppKey("quartermaster_metrics", DPMetrics)
_METRICS_AUTH_KEY = web.AppKey("quartermaster_metrics_auth", object)
_DOWNLOAD_KEY = "quartermaster_download"
_REQUEST_ID_KEY = "quartermaster_request_id"
access_log = logging.getLogger("quartermaster.dp.access")


class PortInUse(QMError):
    code = "port_in_use"

    def __init__(self, host: str, port: int, option: str = "--listen") -> None:
        super().__init__(
            f"cannot listen on {host}:{port}: the address is already in use",
            f"stop the other process or choose another port with {option}",
        )


@dataclass(frozen=True)
class StoreMount:
    """A store folder served under a URL prefix ("" or e.g. "/library")."""

    prefix: str
    root: Path
    auth: AuthCheck | None = None  # None: open to anyone (a DP store clients read)

    def __post_init__(self) -> None:
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ValueError(f"mount prefix {self.prefix!r} must be '' or '/name'")


class _StoreFileResponse(web.FileResponse):
    """FileResponse that never swaps in a `.gz`/`.br` sibling: a blob's bytes are its name.

    A blob's ETag is its SHA-256. `as_if` is the request as the Range rules below decided
    it should be answered (without a Range that is to be ignored)."""

    def __init__(self, path: Path, sha256: str = "", as_if: web.BaseRequest | None = None):
        super().__init__(path)
        self.sha256 = sha256
        self._as_if = as_if

    def _get_file_path_stat_encoding(self, accept_encoding: str) -> Any:
        return super()._get_file_path_stat_encoding("")

    async def prepare(self, request: web.BaseRequest) -> Any:
        return await super().prepare(self._as_if or request)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _blob_answer(request: web.Request, path: Path, sha256: str) -> web.StreamResponse:
    """Range as RFC 9110 has it, with the SHA-256 as the (strong) ETag: an If-Range that is
    not that ETag, a syntactically invalid Range and several ranges are answered with the
    whole blob (200); `bytes=-0` and a range starting past the end are 416."""
    if not path.is_file():
        raise web.HTTPNotFound()
    etag = f'"{sha256}"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
    asked = request.headers.get("Range")
    if asked is None:
        return _StoreFileResponse(path, sha256)
    if_range = request.headers.get("If-Range")
    match = _RANGE.fullmatch(asked.strip())
    whole = (if_range is not None and if_range.strip() != etag) or match is None
    if match is not None and not whole:
        first, last = match.groups()
        size = path.stat().st_size
        if not first and not last:
            whole = True  # "bytes=-": not a range
        elif not first:
            if int(last) == 0:
                raise _unsatisfiable(size)
        elif last and int(last) < int(first):
            whole = True  # invalid: ignored
        elif int(first) >= size:
            raise _unsatisfiable(size)
    if not whole:
        return _StoreFileResponse(path, sha256)
    plain = {k: v for k, v in request.headers.items() if k.lower() not in ("range", "if-range")}
    return _StoreFileResponse(path, sha256, request.clone(headers=plain))


def _unsatisfiable(size: int) -> web.HTTPException:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def create_content_app(
    mounts: Sequence[StoreMount],
    metrics: DPMetrics | None = None,
    metrics_auth: AuthCheck | None = None,
) -> web.Application:
    """An application serving each mount's store read-only, plus `/healthz` and `/metrics`.

    `/metrics` answers a direct loopback peer, or a request `metrics_auth` accepts."""
    app = web.Application(middlewares=[_request_id, _json_errors])
    app[_MOUNT_KEY] = list(mounts)
    app[METRICS_KEY] = metrics or DPMetrics()
    app[_METRICS_AUTH_KEY] = metrics_auth
    for mount in mounts:
        _add_mount(app, mount)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.on_response_prepare.append(_cache_headers)
    return app


def _add_mount(app: web.Application, mount: StoreMount) -> None:
    async def blob(request: web.Request) -> web.StreamResponse:
        shard, digest = request.match_info["shard"], request.match_info["digest"]
        if digest[:2] != shard:
            raise web.HTTPNotFound()
        await _authorize(mount, request)
        return _blob_answer(request, mount.root / "content" / "sha256" / shard / digest, digest)

    async def manifest(request: web.Request) -> web.StreamResponse:
        await _authorize(mount, request)
        name = request.match_info["package_hash"] + ".json"
        return _stored(mount.root / "manifests" / name)

    async def authorize(request: web.Request) -> None:
        await _authorize(mount, request)

    p = mount.prefix
    app.router.add_get(p + "/content/sha256/{shard:[0-9a-f]{2}}/{digest:[0-9a-f]{64}}", blob)
    app.router.add_get(p + "/manifests/{package_hash:[0-9a-f]{64}}.json", manifest)
    app.router.add_post(p + "/" + PACK_ROUTE, pack_handler(mount.root, authorize))


def _stored(path: Path) -> web.StreamResponse:
    """The file's response; a missing one raises, so its 404 has the error shape (a
    FileResponse would answer an empty 404 as application/octet-stream)."""
    if not path.is_file():
        raise web.HTTPNotFound()
    return _StoreFileResponse(path)


async def _authorize(mount: StoreMount, request: web.Request) -> None:
    if mount.auth is not None and not await mount.auth(request):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})


def direct_local_peer(request: web.Request) -> bool:
    """A connection from this host that no proxy relayed (see site/api/operations_routes)."""
    if any(h in request.headers for h in ("Forwarded", "X-Forwarded-For", "X-Real-IP")):
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


async def _metrics(request: web.Request) -> web.Response:
    check = cast(AuthCheck | None, request.app[_METRICS_AUTH_KEY])
    local = direct_local_peer(request) and "Authorization" not in request.headers
    if not local and (check is None or not await check(request)):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    body = generate_latest(request.app[METRICS_KEY].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _healthz(request: web.Request) -> web.Response:
    mounts = request.app[_MOUNT_KEY]
    return web.json_response({"status": "ok", "stores": [m.prefix or "/" for m in mounts]})


async def _cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Content-addressed bytes never change, so a good answer may be cached for ever."""
    if isinstance(response, _StoreFileResponse) and response.status in (200, 206, 304):
        response.headers["Cache-Control"] = IMMUTABLE
        if response.sha256:
            response.headers["ETag"] = f'"{response.sha256}"'


@web.middleware
async def _request_id(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give the request its ID (the caller's `X-Request-ID` when sane): on every line logged
    while it is handled, in its answer's header and error body, and in its access line."""
    request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    request[_REQUEST_ID_KEY] = request_id
    token = bind_request_id(request_id)
    resource = request.match_info.route.resource
    downloads = resource is not None and resource.canonical not in ("/metrics", "/healthz")
    if downloads and request.method in ("GET", "POST"):  # blobs, a pack or a manifest
        request[_DOWNLOAD_KEY] = _store_of(resource.canonical)  # type: ignore[union-attr]
        request.app[METRICS_KEY].active_downloads.inc()
    try:
        response = await handler(request)
    finally:
        unbind_request_id(token)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _store_of(route: str) -> str:
    """The mount a route template belongs to: "/" or its prefix ("/library")."""
    for marker in ("/content/sha256/", "/manifests/", "/" + PACK_ROUTE):
        if marker in route:
            return route.split(marker, 1)[0] or "/"
    return "/"


class _AccessLogger(AbstractAccessLogger):
    """One line per request once its answer is sent (or the peer went away): method, path,
    route, status, bytes, duration and principal."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not isinstance(request, web.Request):
            return
        resource = request.match_info.route.resource
        sent = response.content_length if response.status in (200, 206) else None
        route = resource.canonical if resource is not None else "(unmatched)"
        metrics = request.app[METRICS_KEY]
        metrics.requests.labels(route, str(response.status)).inc()
        store = request.get(_DOWNLOAD_KEY)
        if store is not None:
            metrics.active_downloads.dec()
            if sent:
                metrics.bytes_served.labels(store).inc(sent)
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "request_id": request.get(_REQUEST_ID_KEY, ""),
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status,
                "bytes": sent if sent is not None else response.body_length,
                "duration_ms": round(time * 1000, 2),
                "principal": "dp" if "Authorization" in request.headers else "-",
                "client": request.remote or "-",
            },
        )


_ERROR_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Errors in the protocol's one shape, so a client can show the message and hint."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _ERROR_CODES.get(exc.status, "invalid_input")
        refused = exc if isinstance(exc, PackRefused) else None
        body = {
            "error": {
                "code": code,
                "message": refused.message if refused else f"{exc.reason}: {request.path}",
                "hint": refused.hint if refused else _hint(exc.status),
                "request_id": request.get(_REQUEST_ID_KEY, ""),
            }
        }
        kept = ("WWW-Authenticate", "Allow", "Content-Range")
        headers = {k: v for k, v in exc.headers.items() if k in kept}
        return web.json_response(body, status=exc.status, headers=headers)


def _hint(status: int) -> str:
    if status == 401:
        return "send the DP credential as `Authorization: Bearer qmd_...`"
    if status == 404:
        return (
            "this server only serves /content/sha256/<2 hex>/<64 hex> and "
            "/manifests/<64 hex>.json of the blobs and versions it holds, and "
            "POST /content/pack"
        )
    if status == 405:
        return (
            "a distribution point is read-only: it answers GET and HEAD, and POST to /content/pack"
        )
    return ""


IDLE_TIMEOUT = 20.0  # seconds a connection may go without a whole request
MAX_HEADERS = 64  # header lines per request; each line is at most 8190 bytes (aiohttp's)


async def start_content_server(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    option: str = "--listen",
    idle_timeout: float = IDLE_TIMEOUT,
) -> web.AppRunner:
    """Serve `app` on host:port inside the running event loop; `await runner.cleanup()` stops.

    A connection that has not sent a whole request within `idle_timeout` of opening or of
    its last answer is closed (slowloris; aiohttp's default waits an hour), and a request
    may carry at most MAX_HEADERS header lines of 8190 bytes (400 beyond).

    Raises PortInUse when the address is taken; its hint names `option`, the command-line
    option that sets this address. Port 0 picks a free port (see `bound_port`).
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=idle_timeout,
        max_headers=MAX_HEADERS,
        max_line_size=8190,
        max_field_size=8190,
        access_log=access_log,
        access_log_class=_AccessLogger,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)  # TLS if given
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port, option) from None
        raise QMError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            f"check the address given with {option}",
        ) from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner listens on (useful after asking for port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the content server is not listening")


def run_content_server(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (standalone use, e.g. a DP store without an agent)."""

    async def main() -> None:
        runner = await start_content_server(app, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
