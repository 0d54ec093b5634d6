"""`qm client ...`: the client agent on a managed computer."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from quartermaster.cli.log_options import (
    LogFileOption,
    LogFormatOption,
    LogLevelOption,
    setup_logging,
)
from quartermaster.client.home import ClientHome
from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.ids import normalize_object_id

if TYPE_CHECKING:
    from quartermaster.client.peer_server import PeerCache

app = typer.Typer(help="Run the client agent on a managed computer.", no_args_is_help=True)

T = TypeVar("T")
AGENT_UMASK = 0o077  # every file the agent writes in its home is its own (client/home.py)


@app.callback()
def _private_files() -> None:
    """The agent's files are private to its account; programs it runs get 022 back."""
    os.umask(AGENT_UMASK)


HomeOption = Annotated[
    Path, typer.Option("--home", help="The client's home folder.", file_okay=False)
]


def _guarded(action: Callable[[], T]) -> T:
    """Errors become a message and a hint on stderr and exit code 1, never a traceback."""
    try:
        return action()
    except QMError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(1) from None


@app.command()
def register(
    home: HomeOption,
    site: Annotated[str, typer.Option("--site", help="The site server's URL.")],
    hostname: Annotated[
        str, typer.Option(help="Report this host name instead of the computer's own.")
    ] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Register again with a new identity.")
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="PEM file of the CA (or self-signed certificate) of an https site: "
            "pinned, the only TLS trust for this client from now on.",
            dir_okay=False,
        ),
    ] = None,
    properties: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            metavar="NAME=VALUE",
            help="A custom property for collection rules (prop.NAME); repeatable.",
        ),
    ] = None,
) -> None:
    """Register this computer with a site; prints the client ID.

    Over plain http:// the client trusts the first signing key the answer carries, so
    anyone on the path can make it trust theirs: use https:// with --ca-file
    (docs/security.md).

    Example: qm client register --home /var/lib/qm-client --site https://site.example:8440
    --ca-file site-ca.pem --property department=lab
    """
    from quartermaster.client.machine_facts import parse_properties
    from quartermaster.client.registration import register as register_client

    custom = _guarded(lambda: parse_properties(properties or []))
    if _plain_http_to_another_host(site):
        typer.echo(
            f"warning: {site} is plain http: this client trusts the first signing key it is "
            "sent, and anyone on the path could send theirs; use https:// with --ca-file",
            err=True,
        )
    config = _guarded(
        lambda: register_client(
            ClientHome(home),
            site,
            hostname=hostname,
            force=force,
            ca_file=ca_file,
            properties=custom,
        )
    )
    typer.echo(config.client_id)


def _plain_http_to_another_host(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


@app.command("properties")
def properties_(
    home: HomeOption,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Set a custom property; repeatable."),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", metavar="NAME", help="Remove a custom property; repeatable."),
    ] = None,
) -> None:
    """Show or change this client's custom properties; the next agent run reports them.

    Collection rules see them as prop.NAME, e.g. prop.department = "lab".

    Example: qm client properties --home /var/lib/qm-client --set department=lab
    """
    from quartermaster.client.machine_facts import parse_properties

    client_home = ClientHome(home)
    config = _guarded(client_home.load_config)
    if set_ or unset:
        config.properties = _guarded(
            lambda: parse_properties(set_ or [], config.properties, unset or [])
        )
        client_home.save_config(config)
    for name, value in sorted(config.properties.items()):
        typer.echo(f"{name}={value}")


@app.command()
def run(
    home: HomeOption,
    once: Annotated[bool, typer.Option("--once", help="Do one run and exit.")] = False,
    install: Annotated[
        str,
        typer.Option(
            "--install",
            metavar="DEPLOYMENTID",
            help="Run this available deployment now (a single run, as --once).",
        ),
    ] = "",
    peer_listen: Annotated[
        str,
        typer.Option(
            "--peer-listen",
            metavar="ADDR:PORT",
            help="Serve the verified cache to clients of this boundary when the site allows "
            "it (qm site settings --peer-cache on).",
        ),
    ] = "",
    peer_connections: Annotated[
        int,
        typer.Option("--peer-connections", min=1, max=256, help="Most peer connections at once."),
    ] = 8,
    peer_rate: Annotated[
        int,
        typer.Option(
            "--peer-rate", min=0, metavar="BYTES", help="Most bytes per second served (0: no cap)."
        ),
    ] = 0,
    log_format: str = LogFormatOption,
    log_file: Path | None = LogFileOption,
    log_level: str = LogLevelOption,
) -> None:
    """Poll policy, run what is due and report status; without --once, keep doing so.

    Example: qm client run --home /var/lib/qm-client --once --install QM120001
    Example: qm client run --home /var/lib/qm-client --peer-listen 10.1.0.5:8450
    """
    from quartermaster.client.service import agent_cycle, install_stop_handlers, serve

    setup_logging(log_format, log_file, log_level)
    client_home = ClientHome(home)
    peers = (
        _guarded(lambda: _peer_cache(client_home, peer_listen, peer_connections, peer_rate))
        if peer_listen
        else None
    )
    try:
        if once or install:
            wanted = normalize_object_id(install) if install else None  # qm120001 too
            for line in _guarded(lambda: _run_once(client_home, wanted, peers)):
                typer.echo(line)
            return
        _guarded(client_home.load_config)
        stop = threading.Event()
        install_stop_handlers(stop)
        serve(
            lambda: agent_cycle(client_home, stop, peers=peers),
            stop,
            client_home.log("policyagent"),
        )
    finally:
        if peers is not None:
            peers.stop()


def _peer_cache(home: ClientHome, listen: str, connections: int, rate: int) -> PeerCache:
    from quartermaster.client.cache import ContentCache
    from quartermaster.client.peer_server import PeerCache, parse_listen

    config = home.load_config()
    home.make_private()
    try:
        peers = PeerCache(
            home.root,
            ContentCache(home.cache, config.cache_limit_bytes),
            parse_listen(listen),
            home.log("peercache"),
            connections,
            rate or None,
        )
    except OSError as exc:
        raise InvalidInput(
            f"the peer server cannot listen on {listen}: {exc.strerror}",
            "give an address of this computer and a free port",
        ) from None
    peers.start()
    return peers


def _run_once(home: ClientHome, install: str | None, peers: PeerCache | None = None) -> list[str]:
    from quartermaster.client.agent import Agent
    from quartermaster.client.site_link import SiteLink

    config = home.load_config()
    with SiteLink(
        config.site_url, home.read_secret(), ssl_context=home.ssl_context(config)
    ) as site:
        summary = Agent(home, site, peers=peers).run_once(install)
    if summary.poll_after is not None:
        return [
            *summary.lines,
            f"the site asks for the next poll within {summary.poll_after} "
            "seconds (qm client notify)",
        ]
    return summary.lines


@app.command()
def status(
    home: HomeOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what this client knows: deployments, their results, cache use.

    Example: qm client status --home /var/lib/qm-client --json
    """
    from quartermaster.client.status_view import client_status, render_text

    report = _guarded(lambda: client_status(ClientHome(home)))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in render_text(report):
            typer.echo(line)


@app.command()
def logs(
    home: HomeOption,
    component: Annotated[
        str,
        typer.Option(
            "--component", help="Only this component's log, e.g. cas, execmgr, policyagent."
        ),
    ] = "",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing records as they are written.")
    ] = False,
) -> None:
    """Print the component logs (CMTrace format, with their .lo_ generation) readably.

    Without --component every log is printed, merged in time order.

    Example: qm client logs --home /var/lib/qm-client --component execmgr --follow
    """
    from quartermaster.client.log_view import follow_logs, log_paths, merged_records

    paths = _guarded(lambda: log_paths(ClientHome(home), component))
    for line in merged_records(paths):
        typer.echo(line)
    if follow:
        try:
            for line in follow_logs(paths):
                typer.echo(line)
        except KeyboardInterrupt:
            return


@app.command()
def settings(
    home: HomeOption,
    cache_limit: Annotated[
        int | None,
        typer.Option("--cache-limit", metavar="BYTES", help="Most bytes the content cache keeps."),
    ] = None,
    log_max_bytes: Annotated[
        int | None,
        typer.Option(
            "--log-max-bytes",
            metavar="BYTES",
            help="Size at which a component log is rotated to .lo_ (default 250000).",
        ),
    ] = None,
) -> None:
    """Show or change this client's local settings.

    Example: qm client settings --home /var/lib/qm-client --log-max-bytes 1000000
    """
    client_home = ClientHome(home)
    config = _guarded(client_home.load_config)
    for name, value in (("--cache-limit", cache_limit), ("--log-max-bytes", log_max_bytes)):
        if value is not None and value < 4096:
            typer.echo(f"error: {name} must be at least 4096 bytes, not {value}", err=True)
            raise typer.Exit(1)
    if cache_limit is not None:
        config.cache_limit_bytes = cache_limit
    if log_max_bytes is not None:
        config.log_max_bytes = log_max_bytes
    if cache_limit is not None or log_max_bytes is not None:
        client_home.save_config(config)
    typer.echo(f"cache_limit_bytes={config.cache_limit_bytes}")
    typer.echo(f"log_max_bytes={config.log_max_bytes}")


UnitDirOption = Annotated[
    Path,
    typer.Option("--unit-dir", help="Where systemd units go.", file_okay=False, show_default=True),
]


@app.command("install-service")
def install_service(
    home: HomeOption,
    site: Annotated[str, typer.Option("--site", help="The site server's URL.")],
    user: Annotated[
        str,
        typer.Option(
            "--user", help="Run the agent as this account instead of root (stricter sandbox)."
        ),
    ] = "",
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="PEM file of an https site's CA, pinned.", dir_okay=False),
    ] = None,
    unit_dir: UnitDirOption = Path("/etc/systemd/system"),
) -> None:
    """Register this computer if needed and write the agent's systemd unit (qm-client.service).

    Then: systemctl daemon-reload && systemctl enable --now qm-client

    Example: qm client install-service --home /var/lib/qm-client --site https://site:8440
    """
    from quartermaster.client.service_unit import install_service as install

    path, client_id = _guarded(lambda: install(ClientHome(home), site, user, ca_file, unit_dir))
    typer.echo(f"client {client_id}: wrote {path}")
    typer.echo(f"start it with: systemctl daemon-reload && systemctl enable --now {path.stem}")


@app.command("uninstall-service")
def uninstall_service(unit_dir: UnitDirOption = Path("/etc/systemd/system")) -> None:
    """Remove the unit `qm client install-service` wrote; the client home stays.

    Stop it first: systemctl disable --now qm-client

    Example: qm client uninstall-service
    """
    from quartermaster.client.service_unit import uninstall_unit

    path = _guarded(lambda: uninstall_unit(unit_dir))
    typer.echo(f"removed {path}; run systemctl daemon-reload")
