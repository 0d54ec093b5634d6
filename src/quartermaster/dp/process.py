"""The standalone DP process (`qm dp serve`): content server and agent in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from quartermaster.core.errors import InvalidInput
from quartermaster.core.tls import ServerTLS, read_ca_file
from quartermaster.dp.agent import DPAgent, NotEnrolled, enroll
from quartermaster.dp.content_server import (
    StoreMount,
    bound_port,
    create_content_app,
    start_content_server,
)
from quartermaster.dp.home import DPHome, DPIdentity
from quartermaster.dp.s3_store import S3Location


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
    store = store if store is not None else (identity.store if identity else "")
    bucket = S3Location.parse(store) if store else None
    if bucket is not None:
        bucket.client()  # boto3 is installed: fail now, not at the first blob
        url = url or bucket.public_url()
    app = create_content_app([] if bucket else [StoreMount("", home.store_root)])
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
        print(
            f"DP {identity.dp} serving {store or home.store_root} at {public_url} for site "
            f"{identity.site_code} ({identity.site_url}); log: {home.root / 'distmgr.log'}",
            flush=True,
        )
        agent = DPAgent(home, identity, poll_interval=poll_interval)
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
        print(f"already enrolled as DP {identity.dp}; --token is not needed and was ignored")
    changed = identity
    if site and site.rstrip("/") != identity.site_url:
        _check_site_url(site)
        changed = replace(changed, site_url=site.rstrip("/"))
    if ca_file is not None:
        changed = home.pin_ca(changed, read_ca_file(ca_file))
        print(f"pinned {ca_file} as the site's CA")
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
