"""`qm collection ...`: the sets of clients deployments target."""

from __future__ import annotations

import typer

from quartermaster.cli.site_link import (
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    out,
    print_json,
    print_table,
)

app = typer.Typer(help="Collections: sets of clients to deploy to.", no_args_is_help=True)


@app.command("create")
@handles_errors
def create(name: str = typer.Argument(..., help="Collection name."),
           comment: str = typer.Option("", "--comment"),
           site: str = SiteOption, token: str = TokenOption) -> None:
    """Create an empty collection; prints its name.

    Example: qm collection create "Lab computers"
    """
    result = SiteLink(site, token).post("/api/v1/collections", {"name": name, "comment": comment})
    print(result["name"])


@app.command("add")
@handles_errors
def add(name: str = typer.Argument(..., help="Collection name."),
        client_id: str = typer.Argument(..., help="Client ID (GUID) from `qm client register`."),
        site: str = SiteOption, token: str = TokenOption) -> None:
    """Add a client to a collection as a direct member.

    Example: qm collection add "Lab computers" 6f1d2c3e-...
    """
    SiteLink(site, token).post(f"/api/v1/collections/{name}/members", {"client_id": client_id})


@app.command("show")
@handles_errors
def show(name: str = typer.Argument(...), as_json: bool = JsonOption,
         site: str = SiteOption, token: str = TokenOption) -> None:
    """Members of a collection and why each is a member.

    Example: qm collection show "Lab computers" --json
    """
    data = SiteLink(site, token).get(f"/api/v1/collections/{name}")
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{data['name']}[/]: {data['member_count']} members")
    print_table(data["members"], ["client_id", "hostname", "os", "reason"])


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """List collections.

    Example: qm collection list
    """
    data = SiteLink(site, token).get("/api/v1/collections")
    if as_json:
        print_json(data)
    else:
        print_table(data["collections"], ["name", "comment"])
