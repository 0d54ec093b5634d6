"""`qm site serve`: the control plane (uvicorn + FastAPI) and the data plane (aiohttp with
sendfile) in one process and one event loop, plus the site's embedded distribution point.

The two planes listen on separate ports because they are built for different loads: JSON
request/response on one, zero-copy file serving on the other (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import uvicorn
from aiohttp import web
from fastapi import APIRouter
from sqlalchemy import select

from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.tls import ServerTLS
from quartermaster.dp.content_server import StoreMount, create_content_app, start_content_server
from quartermaster.dp.metrics import DPMetrics
from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import enrollment
from quartermaster.site.distribution.embedded_dp import EmbeddedDP
from quartermaster.site.home import (
    PRIVATE_UMASK,
    SiteHome,
    check_private,
    content_listen,
    split_listen,
)
from quartermaster.site.http_limits import MAX_HEADER_BYTES, BoundedHttpProtocol
from quartermaster.site.identity import accounts
from quartermaster.site.identity.authorization import authorize
from quartermaster.site.jobs import submission
from quartermaster.site.jobs.runner import runner_of
from quartermaster.site.library_bucket import add_library_routes, bucket_of, check_library_url
from quartermaster.site.models import DistributionPoint
from quartermaster.site.settings import get_settings

log = logging.getLogger("quartermaster.site.server")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process stops both planes together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


Face = Callable[[SiteContext], APIRouter]


def serve(
    root: Path,
    listen: str | None,
    content: str | None,
    embedded_dp: bool = True,
    tls: ServerTLS | None = None,
    faces: Sequence[Face] = (),
    trusted_proxies: Sequence[str] = (),
) -> None:
    """`tls` serves both planes over https with one certificate (docs/security.md, "TLS").
    `trusted_proxies` (else config.json's) may name the client in X-Forwarded-For.

    `faces` are more routers on the API port, each built from the context (the web console:
    the caller passes it in, so the site does not depend on its faces)."""
    os.umask(PRIVATE_UMASK)  # every file this process makes is its user's alone
    home = SiteHome(root)
    check_private(home, home.load_config())
    ctx = SiteContext.open(root)
    if listen:
        ctx.config.listen = listen
    if content:
        ctx.config.content_listen = content
    ctx.tls = tls
    ctx.config.tls = tls is not None
    if trusted_proxies:
        ctx.config.trusted_proxies = list(trusted_proxies)
    _check_networks(ctx.config.trusted_proxies)
    if ctx.config.library_url:  # missing credentials: a clear error now, not at a snapshot
        check_library_url(ctx.config.library_url)
    try:
        asyncio.run(_serve(ctx, embedded_dp, faces))
    finally:
        ctx.close()


def _check_networks(proxies: Sequence[str]) -> None:
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise InvalidInput(
                f"trusted proxy {proxy!r} is not an IP address or network",
                "e.g. --trusted-proxy 127.0.0.1 or --trusted-proxy 10.0.0.0/24",
            ) from None


def _library_auth(ctx: SiteContext):  # type: ignore[no-untyped-def]
    """Only enrolled DPs may pull from the content library."""

    def check(token: str) -> bool:
        try:
            with ctx.db.session() as session:
                enrollment.authenticate_dp(session, token)
        except QMError:
            return False
        return True

    async def auth(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and await asyncio.to_thread(check, token)

    return auth


def _metrics_auth(ctx: SiteContext):  # type: ignore[no-untyped-def]
    """The content port's /metrics, from elsewhere than loopback: an account token, as for
    the API's /metrics (any role)."""

    def check(token: str) -> bool:
        try:
            with ctx.db.session() as session:
                authorize(accounts.authenticate_token(session, token), "site.metrics")
        except QMError:
            return False
        return True

    async def auth(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and await asyncio.to_thread(check, token)

    return auth


def _publish_embedded_url(ctx: SiteContext) -> None:
    """Clients reach the embedded DP at the content URL of this start (http or https)."""
    with ctx.db.session() as session:
        for dp in session.scalars(
            select(DistributionPoint).where(DistributionPoint.embedded.is_(True))
        ):
            if dp.url != ctx.content_url:
                dp.url = ctx.content_url


GC_TICK = 60.0  # seconds between looks at gc_interval_seconds (a change takes effect)


async def _submit_garbage_collection_forever(ctx: SiteContext) -> None:
    """Every `gc_interval_seconds`, submit a garbage collection job (site/jobs/kinds.py);
    the database refuses a second while one is queued or running, whoever submits it."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        try:
            interval = await asyncio.to_thread(_gc_interval, ctx)
            if interval and loop.time() - last >= interval:
                last = loop.time()
                job = await asyncio.to_thread(submission.collect_garbage, ctx, "site schedule")
                if job is not None:
                    log.info("garbage collection submitted as job %s", job["job_id"])
        except Exception:  # the database may be away: tried again at the next tick
            log.exception("could not submit the periodic garbage collection")
            interval = 0
        await asyncio.sleep(min(interval or GC_TICK, GC_TICK))


def _gc_interval(ctx: SiteContext) -> int:
    with ctx.db.session() as session:
        return int(get_settings(session)["gc_interval_seconds"])


async def _serve(ctx: SiteContext, embedded_dp: bool, faces: Sequence[Face] = ()) -> None:
    host, port = split_listen(ctx.config.listen)
    content_host, content_port = split_listen(content_listen(ctx.config))
    content_metrics = DPMetrics()  # the content port's /metrics: library and embedded DP
    dp = EmbeddedDP(ctx, content_metrics) if embedded_dp else None
    if dp is not None and not dp.claim():
        log.info(
            "the embedded DP of this site home runs in another site process; this one "
            "serves the APIs and the content library only"
        )
        ctx.embedded_dp_state = "elsewhere"
        dp = None
    bucket = bucket_of(ctx.library)  # None: the library is a folder, served as one
    mounts = [] if bucket else [StoreMount("/library", ctx.library.root, _library_auth(ctx))]
    if dp is not None:
        mounts.insert(0, StoreMount("", dp.store_root))
    tls = ctx.tls
    content_app = create_content_app(mounts, content_metrics, _metrics_auth(ctx))
    if bucket is not None:
        add_library_routes(content_app, bucket, _library_auth(ctx))
    runner = await start_content_server(
        content_app,
        content_host,
        content_port,
        ssl_context=tls.server_context() if tls else None,
        option="--content-listen",
        idle_timeout=ctx.config.header_timeout,
    )
    app = create_app(ctx)
    for face in faces:
        app.include_router(face(ctx))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=int(ctx.config.keep_alive_timeout),  # clients, DPs reuse them
        http=BoundedHttpProtocol.with_limits(
            MAX_HEADER_BYTES, ctx.config.header_timeout, ctx.config.idle_timeout
        ),
        # X-Forwarded-For names the client only when a trusted proxy sent it
        proxy_headers=bool(ctx.config.trusted_proxies),
        forwarded_allow_ips=list(ctx.config.trusted_proxies) or None,
        # an idle TLS peer never answers close_notify: do not wait for ever
        timeout_graceful_shutdown=15,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    api = _Server(config)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        """The embedded DP lets go of its connections first, so the API closes them at once."""
        if dp is not None and dp.agent is not None:
            dp.agent.stop()
        api.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    scheme = "https" if tls else "http"
    log.info(
        "site %s serving API on %s://%s:%s and content on %s://%s:%s",
        ctx.site_code,
        scheme,
        host,
        port,
        scheme,
        content_host,
        content_port,
    )
    if dp is not None:
        await asyncio.to_thread(_publish_embedded_url, ctx)
    dp_task = asyncio.create_task(_run_embedded_dp(ctx, dp)) if dp is not None else None
    runner_of(ctx).start()  # background jobs (site/jobs/), also those a dead process left
    gc_task = asyncio.create_task(_submit_garbage_collection_forever(ctx))
    try:
        await api.serve()
    finally:
        gc_task.cancel()
        if dp_task is not None:
            dp_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(dp_task, 10)
        await runner.cleanup()


async def _run_embedded_dp(ctx: SiteContext, dp: EmbeddedDP) -> None:
    """Run the embedded DP; a failure is logged, kept for /readyz and written on the DP's
    row, where `qm dp list` and `qm site status` show it. The site keeps serving."""
    ctx.embedded_dp_state = "starting"
    try:
        await dp.run()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        problem = f"the embedded DP stopped: {type(exc).__name__}: {exc}"
        ctx.embedded_dp_state = "failed"
        ctx.embedded_dp_problem = problem
        log.exception("the embedded DP failed; the site serves on without it")
        await asyncio.to_thread(_record_embedded_problem, ctx, problem)
    else:
        ctx.embedded_dp_state = "stopped"


def _record_embedded_problem(ctx: SiteContext, problem: str | None) -> None:
    try:
        with ctx.db.session() as session:
            for row in session.scalars(
                select(DistributionPoint).where(DistributionPoint.embedded.is_(True))
            ):
                row.problem = problem
    except Exception:
        log.exception("could not record the embedded DP's state in the database")
