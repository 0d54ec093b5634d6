"""`qm package ...` and `qm program ...`: publish content and define install programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quartermaster.cli.job_commands import JobFailed, wait_for
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
from quartermaster.core.program import ProgramSpec, parse_codes

app = typer.Typer(
    help="Packages: snapshot a source folder into signed, immutable versions.", no_args_is_help=True
)
NoWaitOption = typer.Option(
    False, "--no-wait", help="Return once the site accepted the job (prints its ID)."
)
program_app = typer.Typer(
    help="Programs: the command lines that install a package.", no_args_is_help=True
)


def _program_arg(text: str) -> dict[str, object]:
    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise CommandError(
            f"--program {text!r} is not NAME=COMMANDLINE", "e.g. --program 'Install=sh install.sh'"
        )
    return ProgramSpec(name=name.strip(), command=command.strip()).to_dict()


OutsideLinksOption = typer.Option(
    "refuse",
    "--outside-links",
    help="Links to what is not in the package (absolute, out of the folder, or to nothing; "
    "never followed): refuse the folder (default) or skip them, leaving them out of the "
    "package; each is named. Kept for later updates.",
)


@app.command("create")
@handles_errors
def create(
    name: str = typer.Option(..., "--name", help="Package name."),
    source: Path = typer.Option(..., "--source", help="Source folder, as the site server sees it."),
    program: list[str] = typer.Option([], "--program", help="NAME=COMMANDLINE, repeatable."),
    manufacturer: str = typer.Option("", "--manufacturer"),
    version_label: str = typer.Option("", "--version-label"),
    platform: str = typer.Option(
        "any",
        "--platform",
        help="The clients it is for: any (default: Windows file-name rules, no links), "
        "windows, linux or macos (links inside the folder kept as links; linux: names "
        "differing only by case, and ':' in names, allowed).",
    ),
    outside_links: str = OutsideLinksOption,
    no_wait: bool = NoWaitOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Create a package and publish source version 1; prints the package ID.

    The site snapshots the folder in a background job; this command shows its progress and
    then the distribution to the DPs, and returns when the DPs hold it (--no-wait: at once;
    follow it with `qm job wait`).

    Example:
    qm package create --name Notepad --source /srv/src/notepad --program 'Install=sh install.sh'

    Example: qm package create --name Docs --source /usr/share/doc --platform linux
    --outside-links skip
    """
    body = {
        "name": name,
        "source": str(source.expanduser().absolute()),
        "programs": [_program_arg(p) for p in program],
        "manufacturer": manufacturer,
        "version_label": version_label,
        "platform": platform,
        "outside_links": outside_links,
    }
    link = SiteLink(site, token)
    job = link.post("/api/v1/packages", body)
    for warning in job.get("warnings", []):
        err.print(f"warning: {warning}", markup=False)
    if no_wait:
        print(job["package_id"])
        _queued(job)
        return
    result = _follow_snapshot(link, job)
    print(result["package_id"])


@app.command("update")
@handles_errors
def update(
    package_id: str = typer.Argument(..., help="Package ID, e.g. QM100001."),
    outside_links: str = typer.Option(
        None,
        "--outside-links",
        help="Change the package's choice for links to what is not in the package: refuse "
        "or skip (kept for later updates).",
    ),
    no_wait: bool = NoWaitOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Snapshot the source folder again; prints the (new) source version.

    A new version is made only if something changed; every DP of the package receives it.
    Waits, with progress, until the DPs hold it; --no-wait prints the job ID instead.
    Example: qm package update QM100001
    """
    link = SiteLink(site, token)
    body = {} if outside_links is None else {"outside_links": outside_links}
    job = link.post(f"/api/v1/packages/{package_id}/update", body)
    if no_wait:
        print(job["job_id"])
        _queued(job)
        return
    result = _follow_snapshot(link, job)
    print(result["source_version"])
    if not result["changed"]:
        typer.echo("source folder unchanged; no new version", err=True)


def _queued(job: dict[str, Any]) -> None:
    err.print(
        f"job {job['job_id']} queued; follow it with: qm job wait {job['job_id']}", markup=False
    )


def _follow_snapshot(link: SiteLink, job: dict[str, Any]) -> dict[str, Any]:
    """Wait for the snapshot, then for its distribution to the DPs in contact with the site.
    A distribution that failed is reported (exit 1) after the result is printed."""
    result: dict[str, Any] = wait_for(link, job["job_id"])["result"]
    if result.get("skipped_links"):
        shown = [f"  {s['path']} -> {s['target']}" for s in result["skipped_links"]]
        more = result["skipped_link_count"] - len(shown)
        err.print(
            f"left out {result['skipped_link_count']} links to what is not in the package "
            "(--outside-links skip):\n"
            + "\n".join(shown + ([f"  ... and {more} more"] if more else [])),
            markup=False,
        )
    if result.get("distribution_job") is not None:
        try:
            shipped = wait_for(link, result["distribution_job"])["result"]
        except JobFailed as exc:
            print(
                result["package_id"]
                if job["kind"] == "snapshot.create"
                else result["source_version"]
            )
            raise CommandError(
                f"version {result['source_version']} of {result['package_id']} is published, "
                f"but distribution failed: {exc.message}",
                "see `qm package show` and `qm dp list`",
            ) from None
        if shipped.get("not_waited_for"):
            err.print(
                "not waited for (no contact for minutes): " + ", ".join(shipped["not_waited_for"]),
                markup=False,
            )
    return result


@app.command("show")
@handles_errors
def show(
    package_id: str = typer.Argument(..., help="Package ID."),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Versions (package hash, files, size) and per-DP state of a package.

    Example: qm package show QM100001 --json
    """
    data = SiteLink(site, token).get(f"/api/v1/packages/{package_id}")
    if as_json:
        print_json(data)
        return
    out.print(
        f"[bold]{data['package_id']}[/] {data['name']}  source: {data['source_path']}  "
        f"platform: {data.get('platform', 'any')}"
    )
    print_table(
        data["versions"],
        ["source_version", "package_hash", "file_count", "total_size", "created"],
        "versions",
    )
    print_table([p for p in data["programs"]], ["name", "command", "max_runtime"], "programs")
    if data.get("approvals") and data["approvals"][0]["threshold"]:
        print_table(
            data["approvals"],
            ["source_version", "approvals", "threshold", "pending"],
            "release approvals (qm release approve)",
        )
    print_table(
        data["distribution"],
        ["dp", "source_version", "state", "bytes_done", "bytes_total", "reason"],
        "distribution points",
    )


@app.command("list")
@handles_errors
def list_(
    search: str = typer.Option("", "--search"),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """List packages.

    Example: qm package list --search note
    """
    data = SiteLink(site, token).get("/api/v1/packages", search=search)
    if as_json:
        print_json(data)
    else:
        print_table(data["packages"], ["package_id", "name", "source_version", "source_path"])


@app.command("distribute")
@handles_errors
def distribute(
    package_id: str = typer.Argument(...),
    dp: list[str] = typer.Option(..., "--dp", help="DP name, repeatable."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Make DPs carry a package (by default every DP carries every package).

    Example: qm package distribute QM100001 --dp branch-a
    """
    SiteLink(site, token).post(f"/api/v1/packages/{package_id}/distribute", {"dps": dp})


@app.command("remove-dp")
@handles_errors
def remove_dp(
    package_id: str = typer.Argument(...),
    dp: list[str] = typer.Option(..., "--dp", help="DP name, repeatable."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Stop a DP from carrying a package; its copy is removed after the grace period
    (qm site settings --content-grace).

    Example: qm package remove-dp QM100001 --dp branch-a
    """
    SiteLink(site, token).post(f"/api/v1/packages/{package_id}/remove-dp", {"dps": dp})


@app.command("prune")
@handles_errors
def prune(
    package_id: str = typer.Argument(...),
    keep: int = typer.Option(
        None, "--keep", min=1, help="Versions to keep from now on (default 3); in-use ones stay."
    ),
    no_wait: bool = NoWaitOption,
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Remove versions beyond the package's retention; their bytes are deleted from the
    library and DPs once the grace period (content_grace_seconds) has passed.

    Runs as a garbage collection job and waits for it (--no-wait prints the job ID).
    Example: qm package prune QM100001 --keep 1
    """
    link = SiteLink(site, token)
    job = link.post(f"/api/v1/packages/{package_id}/prune", {} if keep is None else {"keep": keep})
    if no_wait:
        print(job["job_id"])
        _queued(job)
        return
    data: dict[str, Any] = wait_for(link, job["job_id"], quiet=as_json)["result"]
    if as_json:
        print_json(data)
        return
    pruned = ", ".join(map(str, data["pruned"])) or "none"
    kept = ", ".join(map(str, data["kept"]))
    library = data["library"]
    out.print(f"{package_id}: pruned versions {pruned}; kept {kept}")
    out.print(f"library: {library['blobs']} blobs ({library['bytes']} bytes) deleted")


@program_app.command("add")
@handles_errors
def add(
    package_id: str = typer.Argument(..., help="Package ID."),
    name: str = typer.Option(..., "--name"),
    command: str = typer.Option(
        ..., "--command", help="The command line, run in the package folder."
    ),
    max_runtime: int = typer.Option(
        3600, "--max-runtime", help="Seconds before the program is stopped."
    ),
    success_codes: str = typer.Option("0", "--success-codes"),
    reboot_codes: str = typer.Option("3010,1641", "--reboot-codes"),
    retry_codes: str = typer.Option("", "--retry-codes"),
    retry_count: int = typer.Option(3, "--retry-count"),
    retry_delay: int = typer.Option(60, "--retry-delay", help="Seconds; doubles each retry."),
    working_dir: str = typer.Option("", "--working-dir", help="Relative to the package folder."),
    run_context: str = typer.Option(
        "system",
        "--run-context",
        help="system (the agent's account) or user:NAME (a local account; docs/applications.md).",
    ),
    requires_os: list[str] = typer.Option([], "--requires-os", help="e.g. linux; repeatable."),
    requires_arch: list[str] = typer.Option([], "--requires-arch", help="e.g. x86_64; repeatable."),
    min_free_disk_mb: int = typer.Option(0, "--min-free-disk-mb"),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Add a program to a package.

    Example: qm program add QM100001 --name Install --command 'sh install.sh' --max-runtime 600
    """
    requirements: dict[str, object] = {}
    if requires_os:
        requirements["os"] = requires_os
    if requires_arch:
        requirements["architecture"] = requires_arch
    if min_free_disk_mb:
        requirements["min_free_disk_mb"] = min_free_disk_mb
    spec = ProgramSpec(
        name=name,
        command=command,
        working_dir=working_dir,
        run_context=run_context,
        max_runtime=max_runtime,
        success_codes=parse_codes(success_codes),
        reboot_codes=parse_codes(reboot_codes),
        retry_codes=parse_codes(retry_codes),
        retry_count=retry_count,
        retry_delay=retry_delay,
        requirements=requirements,
    )
    SiteLink(site, token).post(f"/api/v1/packages/{package_id}/programs", spec.to_dict())
    print(name)
