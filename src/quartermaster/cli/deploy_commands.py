"""`qm deploy ...`: deploy a program to a collection, steer its rollout and watch it.

Times are typed as the site reads them (``now``, ``+2h``, ISO 8601 with a zone, or a local
time and a zone name); tables show them in this computer's time zone (``TZ``), ``--json``
in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

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

app = typer.Typer(
    help="Deployments (advertisements): a program to a collection.", no_args_is_help=True
)

TIME_HELP = "now, +30m, +2h, +1d, 2026-12-24T20:00Z or '2026-12-24T21:00 Europe/Berlin'."


def local_time(value: str | None) -> str:
    """A UTC ISO time from the site, in the administrator's zone (this computer's TZ)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _localized(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {**row, **{k: local_time(row.get(k)) for k in keys}}


@app.command("create")
@handles_errors
def create(
    package: str = typer.Option(None, "--package", help="Package ID (with --program)."),
    program: str = typer.Option(None, "--program", help="Program name."),
    app_id: str = typer.Option(None, "--app", help="Application ID (instead of a program)."),
    purpose: str = typer.Option(
        "install", "--purpose", help="install or uninstall (an application's deployment)."
    ),
    collection: str = typer.Option(..., "--collection", help="Collection name."),
    available: str = typer.Option(None, "--available", help="When users may run it. " + TIME_HELP),
    deadline: str = typer.Option(
        None,
        "--deadline",
        help="When it becomes mandatory; "
        "without it (but with --available) it is available "
        "only. " + TIME_HELP,
    ),
    expires: str = typer.Option(
        None, "--expires", help="When it stops starting anywhere. " + TIME_HELP
    ),
    rerun: str = typer.Option("if-failed", "--rerun", help="never|always|if-failed|if-succeeded."),
    override_maintenance: bool = typer.Option(
        False,
        "--override-maintenance",
        help="Run at the deadline even outside the collections' maintenance windows.",
    ),
    phases: str = typer.Option(
        None,
        "--phases",
        help="Cumulative phase sizes, e.g. 5%,25%,100%: phase 2 starts when phase 1 succeeded.",
    ),
    success_threshold: int = typer.Option(
        None,
        "--success-threshold",
        min=0,
        max=100,
        help="Percent of a phase that must succeed before the next starts (default 95).",
    ),
    error_threshold: int = typer.Option(
        None,
        "--error-threshold",
        min=0,
        max=100,
        help="Pause by itself when more than this percent of released clients failed (default 5).",
    ),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Deploy a program or an application to a collection; prints the deployment ID.

    Without --available and --deadline it is mandatory now. An application's deployment
    complies with what detection says (docs/applications.md).

    Example: qm deploy create --package QM100001 --program Install --collection Lab
    --available now --deadline "2026-11-26T00:00 Europe/Berlin" --expires +14d
    --phases 5%,25%,100%

    Example: qm deploy create --app QM140000 --collection Lab --purpose install
    """
    if (app_id is None) == (package is None or program is None):
        raise CommandError(
            "deploy either a program or an application",
            "give --package and --program, or --app (with --purpose)",
        )
    what: dict[str, Any] = (
        {"app_id": app_id, "purpose": purpose}
        if app_id
        else {"package_id": package, "program": program}
    )
    body: dict[str, Any] = {
        **what,
        "collection": collection,
        "available": available,
        "deadline": deadline,
        "expires": expires,
        "rerun": rerun,
        "override_maintenance": override_maintenance,
        "phases": phases,
        "success_threshold": success_threshold,
        "error_threshold": error_threshold,
    }
    body = {k: v for k, v in body.items() if v is not None}
    path = "/api/v1/application-deployments" if app_id else "/api/v1/deployments"
    created = SiteLink(site, token).post(path, body)
    for warning in created.get("warnings", []):
        err.print(f"warning: {warning}", markup=False)
    print(created["deployment_id"])


@app.command("reschedule")
@handles_errors
def reschedule(
    deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
    available: str = typer.Option(None, "--available", help="When users may run it. " + TIME_HELP),
    deadline: str = typer.Option(None, "--deadline", help="A new deadline, or none. " + TIME_HELP),
    expires: str = typer.Option(None, "--expires", help="A new expiry, or none. " + TIME_HELP),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Give a deployment new times; times not given stay as they are.

    A new deadline runs it again, at that deadline, on clients whose rerun rule allows it
    (e.g. those that failed, under if-failed).

    Example: qm deploy reschedule QM120000 --deadline "2026-12-05T22:00 Europe/Berlin"
    """
    body = {
        k: v
        for k, v in {"available": available, "deadline": deadline, "expires": expires}.items()
        if v is not None
    }
    data = SiteLink(site, token).post(f"/api/v1/deployments/{deployment_id}/schedule", body)
    out.print(f"{data['deployment_id']}: {_schedule_text(data)}", markup=False)


def _schedule_text(data: dict[str, Any]) -> str:
    return (
        f"available {local_time(data['available'])}, deadline "
        f"{local_time(data['deadline']) or 'none (available only)'}, expires "
        f"{local_time(data['expires']) or 'never'}"
    )


def _steer(action: str, deployment_id: str, site: str, token: str) -> None:
    data = SiteLink(site, token).post(f"/api/v1/deployments/{deployment_id}/{action}")
    reason = f" ({data['state_reason']})" if data.get("state_reason") else ""
    out.print(f"{data['deployment_id']}: {data['state']}{reason}", markup=False)


@app.command("pause")
@handles_errors
def pause(
    deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Hold the deployment: clients do not start it and no further phase is released.

    Example: qm deploy pause QM120000
    """
    _steer("pause", deployment_id, site, token)


@app.command("resume")
@handles_errors
def resume(
    deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Continue a paused deployment, accepting the failures counted so far.

    Example: qm deploy resume QM120000
    """
    _steer("resume", deployment_id, site, token)


@app.command("cancel")
@handles_errors
def cancel(
    deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """End the deployment for good: it leaves every client's policy.

    Example: qm deploy cancel QM120000
    """
    _steer("cancel", deployment_id, site, token)


@app.command("status")
@handles_errors
def status(
    deployment_id: str = typer.Argument(..., help="Deployment ID, e.g. QM120000."),
    state: str = typer.Option(None, "--state", help="Only clients in this state."),
    client: str = typer.Option(
        None,
        "--client",
        help="Only this client (ID or host name), with its program's last output.",
    ),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Schedule, counts (targeted, in progress, succeeded, failed, unknown), the phases of a
    phased rollout, and one row per client.

    Example: qm deploy status QM120000 --client lab-07
    """
    data = SiteLink(site, token).get(
        f"/api/v1/deployments/{deployment_id}/status", state=state, client=client
    )
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
    reason = f" ({data['state_reason']})" if data.get("state_reason") else ""
    out.print(
        f"{data['deployment_id']} {data['package_id']}/{data['program']} to "
        f"{data['collection']}: {data['state']}{reason}",
        markup=False,
    )
    out.print(
        f"{_schedule_text(data)}, rerun {data['rerun']}"
        + (", overrides maintenance windows" if data["override_maintenance"] else ""),
        markup=False,
    )
    out.print(f"targeted {data['targeted']}: {counts}", markup=False)
    sources = data.get("content_sources") or {}
    if any(sources.values()):
        out.print(
            f"bytes downloaded: peers {sources.get('peer', 0)}, DPs in the boundary "
            f"{sources.get('boundary', 0)}, fallback DPs {sources.get('fallback', 0)}",
            markup=False,
        )
    held = data.get("waiting_for_window")
    if held:
        opens = f"opens {held['opens']}" if held["opens"] else "none opens again"
        out.print(
            f"{held['clients']} in progress waiting for a maintenance window ({opens}); "
            "see the collection's windows with `qm collection show`",
            markup=False,
        )
    if data.get("compliance"):
        shown = ", ".join(f"{k} {v}" for k, v in data["compliance"].items())
        out.print(f"application {data['app_id']} ({data['purpose']}): {shown}", markup=False)
    rollout = data.get("rollout")
    if rollout:
        out.print(
            f"phases: success threshold {rollout['success_threshold']}%, error "
            f"threshold {rollout['error_threshold']}%",
            markup=False,
        )
        print_table(
            [
                {**p, "percent": f"{p['percent']}%", "released": "yes" if p["released"] else "no"}
                for p in rollout["phases"]
            ],
            [
                "phase",
                "percent",
                "released",
                "targeted",
                "succeeded",
                "failed",
                "accepted_failures",
            ],
        )
    print_table(
        [
            {**_localized(c, ("last_message_time", "last_evaluated")), "state": c.get("waiting")}
            if c.get("waiting")
            else _localized(c, ("last_message_time", "last_evaluated"))
            for c in data["clients"]
        ],
        ["hostname", "state", "phase", "last_message_id", "last_message_time", "detail"]
        + (["last_evaluated"] if data.get("app_id") else []),
    )
    for row in data["clients"] if client else []:
        _print_output(row)


def _print_output(row: dict[str, Any]) -> None:
    """A client's last program output under its row, as the program wrote it."""
    shown = row.get("last_output")
    if not shown:
        out.print(f"{row['hostname']}: no program output was sent", markup=False)
        return
    cut = " (cut to its last part)" if shown["output_truncated"] else ""
    out.print(
        f"{row['hostname']}: output sent with {shown['message_id']} at {shown['time']}{cut}:",
        markup=False,
    )
    out.print(shown["output_tail"].rstrip("\n"), markup=False, highlight=False)


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
        rows = [_localized(d, ("available", "deadline", "expires")) for d in data["deployments"]]
        print_table(
            rows,
            [
                "deployment_id",
                "package_id",
                "program",
                "collection",
                "state",
                "available",
                "deadline",
                "expires",
            ],
        )
