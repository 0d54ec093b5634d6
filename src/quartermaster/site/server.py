"""`qm site serve`: the control plane (uvicorn + FastAPI) and the data plane (aiohttp with
sendfile) in one process and one event loop, plus the site's embedded distribution point.

The two planes listen on separate ports because they are built for different loads: JSON
request/response on one, zero-copy file serving on the other (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from aiohttp import web

from quartermaster.core.errors import QMError
from quartermaster.dp.content_server import StoreMount, create_content_app, start_content_server
from quartermaster.site import distribution
from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.home import content_listen, split_listen
from quartermaster.site.embedded_dp import EmbeddedDP


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process stops both planes together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(root: Path, listen: str | None, content: str | None, embedded_dp: bool = True) -> None:
    ctx = SiteContext.open(root)
    if listen:
        ctx.config.listen = listen
    if content:
        ctx.config.content_listen = content
    try:
        asyncio.run(_serve(ctx, embedded_dp))
    finally:
        ctx.close()


def _library_auth(ctx: SiteContext):  # type: ignore[no-untyped-def]
    """Only enrolled DPs may pull from the content library."""

    def check(token: str) -> bool:
        try:
            with ctx.db.session() as session:
                distribution.authenticate_dp(session, token)
        except QMError:
            return False
        return True

    async def auth(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and await asyncio.to_thread(check, token)

    return auth


async def _serve(ctx: SiteContext, embedded_dp: bool) -> None:
    host, port = split_listen(ctx.config.listen)
    content_host, content_port = split_listen(content_listen(ctx.config))
    dp = EmbeddedDP(ctx) if embedded_dp else None
    mounts = [StoreMount("/library", ctx.library.root, _library_auth(ctx))]
    if dp is not None:
        mounts.insert(0, StoreMount("", dp.store_root))
    runner = await start_content_server(create_content_app(mounts), content_host, content_port)
    config = uvicorn.Config(create_app(ctx), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off")
    api = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(api, "should_exit", True))
    print(f"site {ctx.site_code} serving API on http://{host}:{port} and content on "
          f"http://{content_host}:{content_port}", flush=True)
    dp_task = asyncio.create_task(dp.run()) if dp is not None else None
    try:
        await api.serve()
    finally:
        if dp_task is not None:
            dp_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(dp_task, 10)
        await runner.cleanup()
