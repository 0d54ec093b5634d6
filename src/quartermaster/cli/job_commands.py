"""`qm job list|show|wait`: background jobs on the site (snapshots, distribution,
validation), and the progress bar the commands that start one show while they wait."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

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
    help="Background jobs: snapshots, distribution, validation.", no_args_is_help=True
)
# Seconds between looks at a job: from FIRST_POLL, doubling up to POLL. A job is seen ended
# within POLL of its end (a 0.5 s step cost `qm package create` 0.25 s a wait on average,
# and it waits twice: the snapshot, then the distribution); a short job is seen at once.
FIRST_POLL, POLL = 0.05, 0.25
UNITS = {"distribution": "DPs", "validation": "versions"}  # what files_* count, by kind


class JobFailed(CommandError):
    """The job ended failed; its reason is the message."""


def _label(job: dict[str, Any]) -> str:
    return f"job {job['job_id']} {job['kind']} {job['target']}".strip()


def wait_for(
    link: SiteLink, job_id: int, timeout: float | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Follow a job with a progress bar on stderr (files or DPs, bytes, rate) until it ends;
    its final state, or JobFailed with its reason."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[items]}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task("", total=None, items="")
        delay = FIRST_POLL
        while True:
            job = link.get(f"/api/v1/jobs/{job_id}")
            unit = UNITS.get(job["kind"], "files")
            bar.update(
                task,
                description=f"{_label(job)} [{job['state']}]",
                completed=job["bytes_done"],
                total=job["bytes_total"] or None,
                items=f"{job['files_done']}/{job['files_total']} {unit}",
            )
            if job["state"] in ("succeeded", "failed"):
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"job {job_id} is still {job['state']} after {timeout:.0f} seconds",
                    f"it goes on on the site; follow it with `qm job wait {job_id}`",
                )
            time.sleep(delay)
            delay = min(POLL, delay * 2)
    if job["state"] == "failed":
        raise JobFailed(f"{_label(job)} failed: {job['reason']}", f"see `qm job show {job_id}`")
    return job


@app.command("list")
@handles_errors
def list_(
    state: str = typer.Option(None, "--state", help="queued, running, succeeded or failed."),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Jobs, newest first.

    Example: qm job list --state running
    """
    data = SiteLink(site, token).get("/api/v1/jobs", state=state, limit=limit)
    if as_json:
        print_json(data)
        return
    for job in data["jobs"]:
        job["progress"] = f"{job['files_done']}/{job['files_total']}"
        job["bytes"] = f"{job['bytes_done']}/{job['bytes_total']}"
    print_table(
        data["jobs"],
        ["job_id", "kind", "target", "state", "progress", "bytes", "attempts", "created", "reason"],
    )


@app.command("show")
@handles_errors
def show(
    job_id: int = typer.Argument(..., help="Job ID, as `qm job list` shows it."),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """One job: state, progress, result or the reason it failed.

    Example: qm job show 12 --json
    """
    job = SiteLink(site, token).get(f"/api/v1/jobs/{job_id}")
    if as_json:
        print_json(job)
        return
    for key in (
        "job_id",
        "kind",
        "target",
        "state",
        "attempts",
        "files_done",
        "files_total",
        "bytes_done",
        "bytes_total",
        "created_by",
        "created",
        "started",
        "finished",
        "owner",
        "reason",
        "result",
    ):
        out.print(f"{key}: {'' if job[key] is None else job[key]}", markup=False)


@app.command("wait")
@handles_errors
def wait(
    job_id: int = typer.Argument(..., help="Job ID."),
    timeout: float = typer.Option(None, "--timeout", help="Give up after SECONDS (exit 1)."),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Wait for a job to end, with a progress bar; exit 1 if it failed.

    Example: qm job wait 12
    """
    job = wait_for(SiteLink(site, token), job_id, timeout)
    if as_json:
        print_json(job)
    else:
        out.print(f"{_label(job)}: {job['state']}", markup=False)
