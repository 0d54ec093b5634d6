"""`qm app ...`: applications, whose deployments comply with what detection says."""

from __future__ import annotations

from typing import Any

import typer

from quartermaster.cli.site_link import (
    CommandError,
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    out,
    print_json,
    print_table,
)

app = typer.Typer(
    help="Applications: a package version, install/uninstall programs and detection rules.",
    no_args_is_help=True,
)

DETECT_HELP = (
    "A detection rule, repeatable: file:PATH, file:PATH sha256=HEX, file:PATH version>=X, "
    "dpkg:NAME[>=VERSION], rpm:NAME[>=VERSION], script[SECONDS]:COMMAND, manifest "
    "(with --target DIR). See docs/applications.md."
)


def _rules(detect: list[str], target: str | None) -> list[str]:
    rules = []
    for rule in detect:
        if rule == "manifest":
            if not target:
                raise CommandError(
                    "--detect manifest needs --target DIR", "the folder the files are laid out in"
                )
            rule = f"manifest:{target}"
        rules.append(rule)
    return rules


def _body(
    package: str,
    install: str,
    uninstall: str | None,
    detect: list[str],
    target: str | None,
    detect_any: bool,
    depends: list[str],
    supersedes: list[str],
    run_as: str,
    reevaluate: int,
    source_version: int | None,
    require: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "package_id": package,
        "install": install,
        "uninstall": uninstall,
        "detect": _rules(detect, target),
        "detect_any": detect_any,
        "depends": depends,
        "supersedes": supersedes,
        "run_as": run_as,
        "reevaluate": reevaluate,
        "source_version": source_version,
        "require": require,
    }
    return {k: v for k, v in body.items() if v is not None}


PackageOpt = typer.Option(..., "--package", help="Package ID whose version the revision names.")
InstallOpt = typer.Option(..., "--install", help="Name of the package's install program.")
UninstallOpt = typer.Option(None, "--uninstall", help="Name of its uninstall program.")
DetectOpt = typer.Option(..., "--detect", help=DETECT_HELP)
TargetOpt = typer.Option(None, "--target", help="The folder of --detect manifest.")
AnyOpt = typer.Option(False, "--detect-any", help="Installed if any rule says so (default: all).")
DependsOpt = typer.Option([], "--depends", help="An application installed first; repeatable.")
SupersedesOpt = typer.Option(
    [], "--supersedes", help="APPID[=upgrade|uninstall]: replaces that application; repeatable."
)
RunAsOpt = typer.Option("system", "--run-as", help="system, or user:NAME (a local account).")
ReevaluateOpt = typer.Option(86400, "--reevaluate", help="Re-evaluation cycle in seconds.")
RequireOpt = typer.Option(
    None,
    "--require",
    help="A requirement in the collection rule language over what the client reports, "
    "e.g. 'os_version >= 12 and prop.department = \"lab\"'; unmet → 3000, nothing downloaded.",
)
VersionOpt = typer.Option(None, "--source-version", help="Package version (default: current).")


@app.command("create")
@handles_errors
def create(
    name: str = typer.Option(..., "--name", help="Application name."),
    package: str = PackageOpt,
    install: str = InstallOpt,
    uninstall: str = UninstallOpt,
    detect: list[str] = DetectOpt,
    target: str = TargetOpt,
    detect_any: bool = AnyOpt,
    depends: list[str] = DependsOpt,
    supersedes: list[str] = SupersedesOpt,
    run_as: str = RunAsOpt,
    reevaluate: int = ReevaluateOpt,
    source_version: int = VersionOpt,
    require: str = RequireOpt,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Create an application (revision 1); prints the application ID.

    A bad detection rule is refused with the column of the mistake.

    Example: qm app create --name Tool --package QM100001 --install Install
    --uninstall Remove --detect 'dpkg:qm-tool>=2.0' --depends QM140000
    --supersedes QM140001=upgrade --run-as system
    """
    body = _body(
        package,
        install,
        uninstall,
        detect,
        target,
        detect_any,
        depends,
        supersedes,
        run_as,
        reevaluate,
        source_version,
        require,
    )
    print(SiteLink(site, token).post("/api/v1/applications", {"name": name, **body})["app_id"])


@app.command("revise")
@handles_errors
def revise(
    app_id: str = typer.Argument(..., help="Application ID, e.g. QM140000."),
    package: str = PackageOpt,
    install: str = InstallOpt,
    uninstall: str = UninstallOpt,
    detect: list[str] = DetectOpt,
    target: str = TargetOpt,
    detect_any: bool = AnyOpt,
    depends: list[str] = DependsOpt,
    supersedes: list[str] = SupersedesOpt,
    run_as: str = RunAsOpt,
    reevaluate: int = ReevaluateOpt,
    source_version: int = VersionOpt,
    require: str = RequireOpt,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Make a new revision (it replaces the current one everywhere); prints its number.

    Example: qm app revise QM140000 --package QM100002 --install Install
    --detect 'dpkg:qm-tool>=2.1'
    """
    body = _body(
        package,
        install,
        uninstall,
        detect,
        target,
        detect_any,
        depends,
        supersedes,
        run_as,
        reevaluate,
        source_version,
        require,
    )
    data = SiteLink(site, token).post(f"/api/v1/applications/{app_id}/revisions", body)
    print(data["current_revision"])


@app.command("show")
@handles_errors
def show(
    app_id: str = typer.Argument(..., help="Application ID."),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Every revision of an application: package version, programs, rules, links.

    Example: qm app show QM140000 --json
    """
    data = SiteLink(site, token).get(f"/api/v1/applications/{app_id}")
    if as_json:
        print_json(data)
        return
    out.print(f"{data['app_id']} {data['name']}: revision {data['current_revision']}", markup=False)
    print_table(
        [
            {
                **r,
                "detection": f"{r['detection']['combine']}: " + ", ".join(r["detection"]["rules"]),
                "supersedes": ", ".join(f"{s['app_id']}={s['mode']}" for s in r["supersedes"]),
                "depends": ", ".join(r["depends"]),
            }
            for r in data["revisions"]
        ],
        [
            "revision",
            "package_id",
            "source_version",
            "install",
            "uninstall",
            "run_as",
            "detection",
            "depends",
            "supersedes",
        ],
    )


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """List applications and their current revisions.

    Example: qm app list --json
    """
    data = SiteLink(site, token).get("/api/v1/applications")
    if as_json:
        print_json(data)
        return
    print_table(
        data["applications"],
        ["app_id", "name", "current_revision", "package_id", "source_version", "run_as"],
    )


@app.command("status")
@handles_errors
def status(
    app_id: str = typer.Argument(..., help="Application ID."),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Compliance: every client evaluated for the application, with what detection saw.

    Example: qm app status QM140000 --json
    """
    data = SiteLink(site, token).get(f"/api/v1/applications/{app_id}/status")
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
    out.print(f"{data['app_id']} {data['name']}: {counts}", markup=False)
    print_table(data["clients"], ["hostname", "state", "deployment_id", "last_evaluated", "detail"])
