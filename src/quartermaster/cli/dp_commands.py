"""`qm dp ...`: distribution points."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.dp.agent import DPAgent, NotEnrolled, enroll
from quartermaster.dp.content_server import (
    StoreMount,
    bound_port,
    create_content_app,
    start_content_server,
)
from quartermaster.dp.home import DPHome, DPIdentity

app = typer.Typer(help="Distribution points: serve content near the clients.", no_args_is_help=True)


@app.command()
def serve(
    home: Annotated[Path, typer.Option("--home", help="DP home: credential, store, log.")],
    site: Annotated[str | None, typer.Option("--site", help="Site server URL.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="One-time enrollment token.")
                     ] = None,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")
                      ] = "127.0.0.1:9000",
    url: Annotated[str | None, typer.Option("--url", help="URL clients use for this DP.")
                   ] = None,
    poll_interval: Annotated[float, typer.Option("--poll-interval",
                                                 help="Seconds between assignment checks.")
                             ] = 60.0,
) -> None:
    """Serve this DP's store and keep it in line with the site, until SIGTERM or Ctrl-C.

    The first start enrolls with the one-time token; later starts need no --token.

    Example: qm dp serve --home /srv/qm-dp --site http://127.0.0.1:8441 --token qme_...
    """
    try:
        host, port = _parse_listen(listen)
        asyncio.run(_serve(DPHome(home.resolve()), site, token, host, port, url, poll_interval))
    except QMError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(2) from None


def _parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"--listen {listen!r} is not HOST:PORT", "e.g. --listen 127.0.0.1:9000")
    return host.strip("[]"), int(port)


async def _serve(home: DPHome, site: str | None, token: str | None, host: str, port: int,
                 url: str | None, poll_interval: float) -> None:
    identity = home.load_identity()
    if identity is None and not (site and token):
        raise NotEnrolled(home)
    home.ensure()
    app = create_content_app([StoreMount("", home.store_root)])
    runner = await start_content_server(app, host, port)  # a taken port fails before enrolling
    try:
        public_url = url or f"http://{host}:{bound_port(runner)}"
        identity = await _identity(home, identity, site, token, public_url)
        typer.echo(f"DP {identity.dp} serving {home.store_root} at {public_url} for site "
                   f"{identity.site_code} ({identity.site_url}); log: {home.root / 'distmgr.log'}")
        agent = DPAgent(home, identity, poll_interval=poll_interval)
        await _run_until_signal(agent)
    finally:
        await runner.cleanup()


async def _identity(home: DPHome, identity: DPIdentity | None, site: str | None,
                    token: str | None, public_url: str) -> DPIdentity:
    if identity is None:
        assert site is not None and token is not None
        _check_site_url(site)
        return await asyncio.to_thread(enroll, home, site, token, public_url)
    if token:
        typer.echo(f"already enrolled as DP {identity.dp}; --token is not needed and was ignored")
    if site and site.rstrip("/") != identity.site_url:
        _check_site_url(site)
        identity = DPIdentity(site.rstrip("/"), identity.dp, identity.credential,
                              identity.site_code, identity.signing_keys, identity.url)
        home.save_identity(identity)
    return identity


def _check_site_url(site: str) -> None:
    parts = urlsplit(site)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"--site {site!r} is not an http(s) URL",
                           "e.g. --site http://127.0.0.1:8441")


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
