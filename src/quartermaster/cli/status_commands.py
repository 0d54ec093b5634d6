"""`qm status ...`: the status message viewer of the command line."""

from __future__ import annotations

import typer

from quartermaster.cli.site_link import (
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    print_json,
    print_table,
)
from quartermaster.core.status_catalog import catalog_markdown

app = typer.Typer(help="Status messages: what happened, numbered.", no_args_is_help=True)


@app.command("messages")
@handles_errors
def messages(
    deployment: str = typer.Option(None, "--deployment"),
    client: str = typer.Option(None, "--client", help="Client ID (GUID) or host name."),
    package: str = typer.Option(None, "--package"),
    message_id: int = typer.Option(None, "--message-id"),
    severity: str = typer.Option(None, "--severity", help="informational|warning|error"),
    dp: str = typer.Option(None, "--dp"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Status messages, newest first, filtered.

    Example: qm status messages --deployment QM120000 --message-id 10008 --json
    """
    data = SiteLink(site, token).get(
        "/api/v1/status-messages",
        deployment=deployment,
        client=client,
        package=package,
        message_id=message_id,
        severity=severity,
        dp=dp,
        limit=limit,
    )
    if as_json:
        print_json(data)
    else:
        print_table(data["messages"], ["time", "message_id", "severity", "component", "text"])


@app.command("catalog")
def catalog(markdown: bool = typer.Option(True, "--markdown/--no-markdown")) -> None:
    """Print the status message catalog (docs/status-messages.md is generated from it).

    Example: qm status catalog > docs/status-messages.md
    """
    print(catalog_markdown())
