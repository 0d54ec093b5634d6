"""`qm site settings`: site-wide settings kept in the database (every site process agrees);
`qm site status`: how the site is doing."""

from __future__ import annotations

import typer
from rich.markup import escape

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
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Show the site settings, or change them (admins only).

    Example: qm site settings --require-approval true
    """
    link = SiteLink(site, token)
    change = {"require_approval": _flag(require_approval, "--require-approval")}
    change = {k: v for k, v in change.items() if v is not None}
    data = link.post("/api/v1/settings", change) if change else link.get("/api/v1/settings")
    if as_json:
        print_json(data)
    else:
        for name, value in sorted(data.items()):
            out.print(f"{name}: {str(value).lower() if isinstance(value, bool) else value}")


@app.command("status")
@handles_errors
def status(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """The site's state: its embedded DP (and the problem that stopped it, if any) and its
    background jobs.

    Example: qm site status
    """
    data = SiteLink(site, token).get("/api/v1/site")
    if as_json:
        print_json(data)
        return
    out.print(f"site {data['site_code']} ({data['name']}), content at {data['content_url']}")
    embedded = data.get("embedded_dp")
    if embedded is None:
        out.print("embedded DP: none")
    elif embedded.get("problem"):
        out.print(
            f"embedded DP {escape(embedded['name'])}: [bold red]failed[/]: "
            f"{escape(embedded['problem'])}"
        )
    else:
        contact = embedded["last_contact"] or "never"
        out.print(f"embedded DP {escape(embedded['name'])}: ok, last contact {contact}")
    jobs = data.get("jobs", {})
    out.print(
        f"jobs: {jobs.get('running', 0)} running, {jobs.get('queued', 0)} queued, "
        f"{jobs.get('failed', 0)} failed (qm job list)"
    )
