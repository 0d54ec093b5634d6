"""`qm dp ...`: distribution points."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from quartermaster.cli.log_options import (
    LogFileOption,
    LogFormatOption,
    LogLevelOption,
    setup_logging,
)
from quartermaster.core.errors import InvalidInput, QMError

app = typer.Typer(help="Distribution points: serve content near the clients.", no_args_is_help=True)


@app.command()
def serve(
    home: Annotated[Path, typer.Option("--home", help="DP home: credential, store, log.")],
    site: Annotated[str | None, typer.Option("--site", help="Site server URL.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="One-time enrollment token.")] = None,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve on.")
    ] = "127.0.0.1:9000",
    url: Annotated[str | None, typer.Option("--url", help="URL clients use for this DP.")] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between assignment checks.")
    ] = 60.0,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate (chain): serve the store over https.",
            dir_okay=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="PEM private key of --tls-cert.", dir_okay=False),
    ] = None,
    log_format: str = LogFormatOption,
    log_file: Path | None = LogFileOption,
    log_level: str = LogLevelOption,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="PEM CA (or self-signed certificate) of an https site: pinned, the "
            "only TLS trust for the site, the library and other DPs.",
            dir_okay=False,
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="s3://BUCKET/PREFIX?endpoint=URL: keep the store in a bucket (credentials "
            "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); clients download from it.",
        ),
    ] = None,
) -> None:
    """Serve this DP's store and keep it in line with the site, until SIGTERM or Ctrl-C.

    The first start enrolls with the one-time token; later starts need no --token.

    Example: qm dp serve --home /srv/qm-dp --site http://127.0.0.1:8440 --token qme_...

    Example (bucket): qm dp serve --home /srv/qm-dp --site http://127.0.0.1:8440 --token
    qme_... --store 's3://qm-content/dp1?endpoint=http://127.0.0.1:8333'

    Example (TLS): qm dp serve --home /srv/qm-dp --site https://site.example:8440 --token
    qme_... --ca-file site-ca.pem --tls-cert dp.pem --tls-key dp.key --listen 0.0.0.0:9000
    """
    from quartermaster.core.tls import ServerTLS
    from quartermaster.dp.home import DPHome
    from quartermaster.dp.process import serve_dp

    setup_logging(log_format, log_file, log_level)
    try:
        host, port = _parse_listen(listen)
        tls = ServerTLS.from_options(tls_cert, tls_key)
        asyncio.run(
            serve_dp(
                DPHome(home.resolve()),
                site,
                token,
                host,
                port,
                url,
                poll_interval,
                tls,
                ca_file,
                store,
            )
        )
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
