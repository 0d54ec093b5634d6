"""The standalone DP process (`qm dp serve`): content server and agent in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from quartermaster.core.errors import InvalidInput
from quartermaster.core.s3_location import S3Location
from quartermaster.core.tls import ServerTLS, read_ca_file
from quartermaster.dp.agent import DPAgent, NotEnrolled, enroll
from quartermaster.dp.content_server import (
    StoreMount,
    bound_port,
    create_content_app,
    start_content_server,
)
from quartermaster.dp.home import DPHome, DPIdentity
from quartermaster.dp.metrics import DPMetrics
from quartermaster.dp.s3_store import s3_client

log = logging.getLogger("quartermaster.dp.process")


async def serve_dp(
    home: DPHome,
    site: str | None,
    token: str | None,
    host: str,
    port: int,
    url: str | None,
    poll_interval: float,
    tls: ServerTLS | None = None,
    ca_file: Path | None = None,
    store: str | None = None,
) -> None:
    """`tls` serves the store over https; `ca_file` pins the site's CA (at enrollment, or
    replacing the pinned one later); `store` puts the store in a bucket (s3_store.py): then
    clients download from the bucket and this process serves only /healthz."""
    identity = home.load_identity()
    if identity is None and not (site and token):
        raise NotEnrolled(home)
    home.ensure()
    metrics = DPMetrics()
    store = store if store is not None else (identity.store if identity else "")
    bucket = S3Location.parse(store) if store else None
    if bucket is not None:
        s3_client(bucket)  # boto3 is installed: fail now, not at the first blob
        url = url or bucket.public_url()
    app = create_content_app([] if bucket else [StoreMount("", home.store_root)], metrics)
    context = tls.server_context() if tls is not None else None
    # a taken port fails before enrolling
    runner = await start_content_server(app, host, port, ssl_context=context)
    try:
        scheme = "https" if tls is not None else "http"
        public_url = url or f"{scheme}://{host}:{bound_port(runner)}"
        identity = await _identity(home, identity, site, token, public_url, ca_file)
        if identity.store != store:
            identity = replace(identity, store=store)
            home.save_identity(identity)
        log.info(
            "DP %s serving %s at %s for site %s (%s); distribution log: %s",
            identity.dp,
            store or home.store_root,
            public_url,
            identity.site_code,
            identity.site_url,
            home.root / "distmgr.log",
        )
        agent = DPAgent(home, identity, poll_interval=poll_interval, metrics=metrics)
        await _run_until_signal(agent)
    finally:
        await runner.cleanup()


async def _identity(
    home: DPHome,
    identity: DPIdentity | None,
    site: str | None,
    token: str | None,
    public_url: str,
    ca_file: Path | None,
) -> DPIdentity:
    if identity is None:
        if not (site and token):
            raise NotEnrolled(home)
        _check_site_url(site)
        return await asyncio.to_thread(enroll, home, site, token, public_url, ca_file)
    if token:
        log.warning("already enrolled as DP %s; --token is not needed and was ignored", identity.dp)
    changed = identity
    if site and site.rstrip("/") != identity.site_url:
        _check_site_url(site)
        changed = replace(changed, site_url=site.rstrip("/"))
    if ca_file is not None:
        changed = home.pin_ca(changed, read_ca_file(ca_file))
        log.info("pinned %s as the site's CA", ca_file)
    if changed != identity:
        home.save_identity(changed)
    return changed


def _check_site_url(site: str) -> None:
    parts = urlsplit(site)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"--site {site!r} is not an http(s) URL", "e.g. --site http://127.0.0.1:8441"
        )


async def _run_until_signal(agent: DPAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(agent.run_async())
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
