"""`qm deploy ...`: deploy a program to a collection and watch it."""

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

app = typer.Typer(help="Deployments (advertisements): a program to a collection.",
                  no_args_is_help=True)


@app.command("create")
@handles_errors
def create(package: str = typer.Option(..., "--package", help="Package ID."),
           program: str = typer.Option(..., "--program", help="Program name."),
           collection: str = typer.Option(..., "--collection", help="Collection name."),
           rerun: str = typer.Option("if-failed", "--rerun", help="never|always|if-failed|if-succeeded."),
           site: str = SiteOption, token: str = TokenOption) -> None:
    """Deploy a program to a collection, mandatory now; prints the deployment ID.

    Example: qm deploy create --package QM100001 --program Install --collection "Lab computers"
    """
    body = {"package_id": package, "program": program, "collection": collection, "rerun": rerun}
    print(SiteLink(site, token).post("/api/v1/deployments", body)["deployment_id"])


@app.command("status")
@handles_errors
def status(deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
           state: str = typer.Option(None, "--state", help="Only clients in this state."),
           as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """Counts (targeted, in progress, succeeded, failed, unknown) and one row per client.

    Example: qm deploy status QM120000 --json
    """
    data = SiteLink(site, token).get(f"/api/v1/deployments/{deployment_id}/status", state=state)
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
    out.print(f"[bold]{data['deployment_id']}[/] {data['package_id']}/{data['program']}: "
              f"targeted {data['targeted']}: {counts}")
    print_table(data["clients"], ["hostname", "state", "last_message_id", "last_message_time", "detail"])


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """List deployments.

    Example: qm deploy list
    """
    data = SiteLink(site, token).get("/api/v1/deployments")
    if as_json:
        print_json(data)
    else:
        print_table(data["deployments"], ["deployment_id", "package_id", "program", "state", "deadline"])
