"""A real `qm site serve` with extra options (logging, no DP), for the operations tests."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.processes import Daemon, SiteServer, free_port_pair
from tests.e2e.site_templates import migrated_site_home


def site_with_options(
    base: Path, *options: str, database: str | None = None, start: bool = True
) -> SiteServer:
    """A new site home, served by `qm site serve --home HOME OPTIONS...` (stdout and stderr
    in base/site-serve.log)."""
    home = base / "site"
    port = free_port_pair()
    migrated_site_home(home, database, "QM1", f"127.0.0.1:{port}")
    daemon = Daemon(["site", "serve", "--home", str(home), *options], base / "site-serve.log")
    server = SiteServer(home, port, daemon)
    if start:
        server.start()
    return server
