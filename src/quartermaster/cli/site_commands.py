"""`qm site ...`: create, upgrade and serve a site."""

from __future__ import annotations

from pathlib import Path

import typer

from quartermaster.cli.site_link import handles_errors, out
from quartermaster.site.home import DEFAULT_LISTEN

app = typer.Typer(help="Create and run the site server.", no_args_is_help=True)

HomeOption = typer.Option(..., "--home", help="The site home folder, e.g. ./site.")


@app.command("init")
@handles_errors
def init(home: Path = HomeOption,
         site_code: str = typer.Option("QM1", "--site-code", help="Three characters, e.g. QM1."),
         name: str = typer.Option("Quartermaster site", "--name", help="A name for people."),
         database: str = typer.Option(None, "--database",
                                      help="postgresql://USER@HOST:PORT/DB; default: SQLite in the home."),
         listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="API address HOST:PORT.")) -> None:
    """Create a site: database, content library, signing key and DIR/admin.token.

    Example: qm site init --home ./site --site-code QM1
    """
    from quartermaster.site.setup import init_site

    site = init_site(home, site_code, name, database, listen)
    out.print(f"site {site_code} created in {site.root}; admin token in {site.admin_token_path}")
    out.print(f"start it with: qm site serve --home {home}")


@app.command("serve")
@handles_errors
def serve(home: Path = HomeOption,
          listen: str = typer.Option(None, "--listen", help="API address HOST:PORT (default from init)."),
          content_listen: str = typer.Option(None, "--content-listen",
                                             help="Embedded DP address (default: API port + 1)."),
          no_dp: bool = typer.Option(False, "--no-dp", help="Do not run the embedded DP.")) -> None:
    """Run the site API, the client and DP APIs and the embedded DP in one process.

    Example: qm site serve --home ./site --listen 127.0.0.1:8440
    """
    from quartermaster.site.server import serve as run

    run(home, listen, content_listen, embedded_dp=not no_dp)


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
