"""`qm site settings`: site-wide settings kept in the database (every site process agrees)."""

from __future__ import annotations

import typer

from quartermaster.cli.site_commands import app
from quartermaster.cli.site_link import (
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    out,
    print_json,
)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "yes", "on", "1"):
        return True
    if value.lower() in ("false", "no", "off", "0"):
        return False
    raise typer.BadParameter(f"{name} takes true or false")


@app.command("settings")
@handles_errors
def settings(
    require_approval: str = typer.Option(
        None,
        "--require-approval",
        metavar="true|false",
        help="New clients wait for `qm client approve` before they get policy.",
    ),
    content_grace: int = typer.Option(
        None,
        "--content-grace",
        min=0,
        metavar="SECONDS",
        help="How long pruned or replaced versions stay in the library and on DPs.",
    ),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Show the site settings, or change them (admins only).

    Example: qm site settings --require-approval true
    """
    link = SiteLink(site, token)
    change: dict[str, object] = {
        "require_approval": _flag(require_approval, "--require-approval"),
        "content_grace_seconds": content_grace,
    }
    change = {k: v for k, v in change.items() if v is not None}
    data = link.post("/api/v1/settings", change) if change else link.get("/api/v1/settings")
    if as_json:
        print_json(data)
    else:
        for name, value in sorted(data.items()):
            out.print(f"{name}: {str(value).lower() if isinstance(value, bool) else value}")
