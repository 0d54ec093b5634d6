"""`qm site ...`: create, upgrade and serve a site."""

from __future__ import annotations

from pathlib import Path

import typer

from quartermaster.cli.log_options import (
    LogFileOption,
    LogFormatOption,
    LogLevelOption,
    setup_logging,
)
from quartermaster.cli.site_link import JsonOption, handles_errors, out, print_json
from quartermaster.site.home import DEFAULT_LISTEN

app = typer.Typer(help="Create and run the site server.", no_args_is_help=True)

HomeOption = typer.Option(..., "--home", help="The site home folder, e.g. ./site.")


@app.command("init")
@handles_errors
def init(
    home: Path = HomeOption,
    site_code: str = typer.Option("QM1", "--site-code", help="Three characters, e.g. QM1."),
    name: str = typer.Option("Quartermaster site", "--name", help="A name for people."),
    database: str = typer.Option(
        None, "--database", help="postgresql://USER@HOST:PORT/DB; default: SQLite in the home."
    ),
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="API address HOST:PORT."),
    admin_password: str = typer.Option(
        None,
        "--admin-password",
        envvar="QM_ADMIN_PASSWORD",
        help="Console password of the first account, admin (or QM_ADMIN_PASSWORD).",
    ),
    source_root: list[Path] = typer.Option(
        None,
        "--source-root",
        help="A folder package sources may come from (repeat it); default: the system's "
        "temporary folder. Change later with `qm site source-roots`.",
    ),
    library: str = typer.Option(
        None,
        "--library",
        metavar="s3://BUCKET/PREFIX?endpoint=URL",
        help="Keep the content library in an S3-compatible bucket (default: DIR/library). "
        "Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "
        "for `qm site serve` too; they are checked now.",
    ),
) -> None:
    """Create a site: database, content library, signing key, the `admin` account and its
    token in DIR/admin.token.

    Example: QM_ADMIN_PASSWORD=... qm site init --home ./site --site-code QM1
    """
    from quartermaster.site.setup import init_site

    site = init_site(
        home, site_code, name, database, listen, admin_password, source_root, library or ""
    )
    out.print(f"site {site_code} created in {site.root}; admin token in {site.admin_token_path}")
    if admin_password is None:
        out.print(
            "the admin account has no console password yet; set one with: qm account password admin"
        )
    out.print(f"start it with: qm site serve --home {home}")


@app.command("serve")
@handles_errors
def serve(
    home: Path = HomeOption,
    listen: str = typer.Option(None, "--listen", help="API address HOST:PORT (default from init)."),
    content_listen: str = typer.Option(
        None, "--content-listen", help="Embedded DP address (default: API port + 1)."
    ),
    no_dp: bool = typer.Option(False, "--no-dp", help="Do not run the embedded DP."),
    tls_cert: Path = typer.Option(
        None, "--tls-cert", dir_okay=False, help="PEM certificate (chain): both planes over https."
    ),
    tls_key: Path = typer.Option(
        None, "--tls-key", dir_okay=False, help="PEM private key of --tls-cert."
    ),
    trusted_proxy: list[str] = typer.Option(
        None,
        "--trusted-proxy",
        help="A reverse proxy (address or network) whose X-Forwarded-For names the client; "
        "repeat it. Default: config.json's trusted_proxies, else none.",
    ),
    log_format: str = LogFormatOption,
    log_file: Path = LogFileOption,
    log_level: str = LogLevelOption,
) -> None:
    """Run the site API, the client and DP APIs, the web console (/console) and the
    embedded DP in one process. It logs to stderr (docs/operations.md).

    Example: qm site serve --home ./site --listen 127.0.0.1:8440

    Example (TLS): qm site serve --home ./site --tls-cert site.pem --tls-key site.key

    Example (behind nginx on this host): qm site serve --home ./site --trusted-proxy 127.0.0.1
    """
    from quartermaster.console import create_console
    from quartermaster.core.tls import ServerTLS
    from quartermaster.site.server import serve as run

    setup_logging(log_format, log_file, log_level)
    run(
        home,
        listen,
        content_listen,
        embedded_dp=not no_dp,
        tls=ServerTLS.from_options(tls_cert, tls_key),
        faces=[create_console],
        trusted_proxies=trusted_proxy or (),
    )


@app.command("upgrade")
@handles_errors
def upgrade(home: Path = HomeOption) -> None:
    """Apply database migrations after installing a new release.

    Example: qm site upgrade --home ./site
    """
    from quartermaster.site import db
    from quartermaster.site.home import SiteHome

    db.upgrade(SiteHome(home).load_config().database_url)
    out.print("site database is up to date")


@app.command("source-roots")
@handles_errors
def source_roots(
    home: Path = HomeOption,
    add: list[Path] = typer.Option(None, "--add", help="Allow sources under this folder."),
    remove: list[Path] = typer.Option(None, "--remove", help="Stop allowing this folder."),
) -> None:
    """List, add or remove the folders package sources may come from (on the site host:
    there is no API for this, so no account can widen them). Without any set, the system's
    temporary folder is allowed. A site home, DP home or client home is always refused.

    Example: qm site source-roots --home ./site --add /srv/packages --remove /tmp
    """
    import os

    from quartermaster.site import source_roots as roots
    from quartermaster.site.home import SiteHome

    site = SiteHome(home)
    site.load_config()  # a site home, or a clear error
    current = roots.read_roots(site)
    if add or remove:
        gone = {Path(os.path.realpath(folder)) for folder in remove or []}
        current = roots.write_roots(site, [r for r in current if r not in gone] + list(add or []))
    for root in current:
        out.print(str(root))


@app.command("backup")
@handles_errors
def backup(
    home: Path = HomeOption,
    to: Path = typer.Option(..., "--to", help="The backup folder (made 0700 if new)."),
    as_json: bool = JsonOption,
) -> None:
    """Back up the database, keys and content library; blobs already in DIR are not copied
    again. Safe while the site runs.

    Example: qm site backup --home ./site --to /backup/qm
    """
    from quartermaster.site.backup import backup_site

    result = backup_site(home, to)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"backup {result.path.name} complete in {to}: {result.versions} versions, "
        f"{result.blobs} blobs ({result.blobs_copied} copied, {result.bytes_copied} bytes)"
    )


@app.command("restore")
@handles_errors
def restore(
    source: Path = typer.Option(..., "--from", help="A backup folder (its newest backup)."),
    home: Path = typer.Option(..., "--home", help="A new, empty site home."),
    database: str = typer.Option(
        None, "--database", help="For a PostgreSQL backup: a new, empty database URL."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Bring a site back from a backup into a new home; every blob is re-hashed first.

    Example: qm site restore --from /backup/qm --home /srv/qm-site-restored
    """
    from quartermaster.site.backup import restore_site

    result = restore_site(source, home, database)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"site {result.site_code} restored from backup {result.backup} into {result.home}: "
        f"{result.versions} versions, {result.blobs_verified} blobs verified"
    )
    out.print(f"start it with: qm site serve --home {home}")
