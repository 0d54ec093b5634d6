"""`qm dp add|list|content|validate|retire|reenroll`: distribution points as the administrator
sees them."""

from __future__ import annotations

import typer

from quartermaster.cli.dp_commands import app
from quartermaster.cli.job_commands import wait_for
from quartermaster.cli.site_link import (
    CommandError,
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    err,
    handles_errors,
    out,
    print_json,
    print_table,
)


@app.command("add")
@handles_errors
def add(
    name: str = typer.Option(..., "--name"),
    url: str = typer.Option(
        None, "--url", help="How clients reach the DP, e.g. http://127.0.0.1:9000."
    ),
    store: str = typer.Option(
        None,
        "--store",
        help="s3://BUCKET/PREFIX?endpoint=URL: a DP whose store is a bucket; clients "
        "download from ENDPOINT/BUCKET/PREFIX unless --url names a CDN in front of it.",
    ),
    boundary: list[str] = typer.Option([], "--boundary", help="CIDR the DP serves; repeatable."),
    fallback: bool = typer.Option(
        False, "--fallback", help="Serve clients outside every boundary."
    ),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Register a DP; prints its one-time enrollment token for `qm dp serve --token`
    (with --store, run `qm dp serve --store` with the same URL and the bucket's credentials).

    Example: qm dp add --name branch-a --url http://127.0.0.1:9000 --boundary 10.1.0.0/16

    Example: qm dp add --name cloud --store 's3://qm-content/dp1?endpoint=http://s3.example:8333'
    """
    if store:
        from quartermaster.core.s3_location import S3Location

        url = url or S3Location.parse(store).public_url()
    if not url:
        raise CommandError("a DP needs --url (how clients reach it) or --store", "see --help")
    body = {"name": name, "url": url, "boundaries": boundary, "fallback": fallback}
    print(SiteLink(site, token).post("/api/v1/dps", body)["enrollment_token"])


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """DPs with health (reachable, content state, validation and mismatch reports) and
    per package version state.

    Example: qm dp list --json
    """
    data = SiteLink(site, token).get("/api/v1/dps")
    if as_json:
        print_json(data)
        return
    for dp in data["dps"]:
        dp["versions"] = ", ".join(
            f"{c['package_id']}v{c['source_version']}:{c['state']}" for c in dp["content"]
        )
        health = dp.get("health") or {}
        dp["health"] = f"{health.get('level', '?')}: {health.get('summary', '')}"
    print_table(
        data["dps"],
        [
            "name",
            "url",
            "state",
            "health",
            "boundaries",
            "fallback",
            "last_contact",
            "versions",
            "problem",
        ],
    )


@app.command("content")
@handles_errors
def content(
    name: str = typer.Argument(...),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """What a DP holds and the state of each package version.

    Example: qm dp content branch-a --json
    """
    data = SiteLink(site, token).get(f"/api/v1/dps/{name}/content")
    if as_json:
        print_json(data)
    else:
        print_table(
            data["content"],
            [
                "package_id",
                "source_version",
                "state",
                "bytes_done",
                "bytes_total",
                "last_validated",
                "reason",
            ],
        )


@app.command("validate")
@handles_errors
def validate(
    name: str = typer.Argument(...),
    package: str = typer.Option(None, "--package"),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once asked (the job goes on; `qm job wait ID`)."
    ),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Ask a DP to re-hash what it holds now (all packages, or one); prints how many
    versions, then waits, with progress, until the DP has reported them all.

    Example: qm dp validate branch-a --package QM100001
    """
    link = SiteLink(site, token)
    data = link.post(f"/api/v1/dps/{name}/validate", {"package_id": package})
    print(data["versions_to_validate"], flush=True)
    if no_wait:
        err.print(f"job {data['job_id']}: qm job wait {data['job_id']}", markup=False)
        return
    wait_for(link, data["job_id"])


@app.command("retire")
@handles_errors
def retire(
    name: str = typer.Argument(...), site: str = SiteOption, token: str = TokenOption
) -> None:
    """Retire a DP: its credential stops working and clients are no longer sent to it.

    Example: qm dp retire branch-a
    """
    SiteLink(site, token).post(f"/api/v1/dps/{name}/retire")
    out.print(f"distribution point {name} retired")


@app.command("reenroll")
@handles_errors
def reenroll(
    name: str = typer.Argument(...), site: str = SiteOption, token: str = TokenOption
) -> None:
    """Print a new one-time enrollment token for a DP (its old credential stops working).

    Example: qm dp reenroll branch-a   (then: qm dp serve ... --token TOKEN)
    """
    print(SiteLink(site, token).post(f"/api/v1/dps/{name}/reenroll")["enrollment_token"])
