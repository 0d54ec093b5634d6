"""`qm audit`: who changed what on the site, newest first."""

from __future__ import annotations

import typer

from quartermaster.cli.account_commands import parse_when
from quartermaster.cli.site_link import (
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    print_json,
    print_table,
)


@handles_errors
def audit(
    account: str = typer.Option(None, "--account", help="Only this account's entries."),
    action: str = typer.Option(None, "--action", help="Only this action, e.g. dp.retire."),
    since: str = typer.Option(None, "--since", help="7d, 12h (ago) or an ISO time."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """The audit log: time, account, action, object, outcome and details of every change.

    Example: qm audit --account alice --since 7d --json
    """
    data = SiteLink(site, token).get(
        "/api/v1/audit",
        account=account,
        action=action,
        since=parse_when(since, past=True) if since else None,
        limit=limit,
    )
    if as_json:
        print_json(data)
        return
    for entry in data["entries"]:  # details (request, route, source) are in --json
        entry["time"] = entry["time"][:19].replace("T", " ")
    print_table(
        data["entries"],
        ["time", "account", "action", "object", "outcome"],
        "audit log (UTC, newest first)",
    )
