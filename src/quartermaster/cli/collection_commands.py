"""`qm collection ...`: the sets of clients deployments target.

A client is a member when it was added by ID, matches any query rule, or is in an included
collection, and it is not in any excluded collection. The rule language and maintenance
windows are described in docs/deployments.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

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

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(help="Collections: sets of clients to deploy to.", no_args_is_help=True)
rule_app = typer.Typer(help="Query rules of a collection.", no_args_is_help=True)
window_app = typer.Typer(help="Maintenance windows of a collection.", no_args_is_help=True)
app.add_typer(rule_app, name="rule")
app.add_typer(window_app, name="window")

RULE_HELP = 'A query rule, e.g. \'os = "linux" and hostname like "lab-%"\'.'
WINDOW_HELP = (
    "A maintenance window, e.g. 'Sat 22:00-02:00 UTC' or 'daily 01:00-03:00 Europe/Berlin'."
)
RulesOption = typer.Option([], "--rule", help=RULE_HELP + " Repeatable.")
IncludeOption = typer.Option([], "--include", help="Include another collection. Repeatable.")
ExcludeOption = typer.Option([], "--exclude", help="Exclude another collection. Repeatable.")
WindowsOption = typer.Option([], "--window", help=WINDOW_HELP + " Repeatable.")


def shows_text_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print the site's error verbatim: a rule error's caret must stay under its column, so
    no markup and no wrapping."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CommandError as exc:
            err.print("error: ", style="bold red", end="")
            err.print(exc.message, markup=False, highlight=False, soft_wrap=True)
            if exc.hint:
                err.print("hint: ", style="yellow", end="")
                err.print(exc.hint, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _path(name: str, *rest: str) -> str:
    return "/".join(["/api/v1/collections", quote(name, safe=""), *rest])


def _summary(data: dict[str, Any]) -> None:
    out.print(f"{data['name']}: {data['member_count']} members", markup=False)


@app.command("create")
@handles_errors
@shows_text_errors
def create(
    name: str = typer.Argument(..., help="Collection name."),
    comment: str = typer.Option("", "--comment"),
    rules: list[str] = RulesOption,
    include: list[str] = IncludeOption,
    exclude: list[str] = ExcludeOption,
    windows: list[str] = WindowsOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Create a collection with its rules, includes, excludes and windows; prints its name.

    Example: qm collection create Lab --rule 'os = "linux" and hostname like "lab-%"'
    --exclude Servers --window 'Sat 22:00-02:00 UTC'
    """
    body = {
        "name": name,
        "comment": comment,
        "rules": rules,
        "include": include,
        "exclude": exclude,
        "windows": windows,
    }
    result = SiteLink(site, token).post("/api/v1/collections", body)
    print(result["name"])


@app.command("add")
@handles_errors
def add(
    name: str = typer.Argument(..., help="Collection name."),
    client_id: str = typer.Argument(..., help="Client ID (GUID) or host name."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Add a client to a collection as a direct member.

    Example: qm collection add "Lab computers" lab-09   (or its GUID)
    """
    SiteLink(site, token).post(_path(name, "members"), {"client_id": client_id})


@app.command("remove")
@handles_errors
def remove(
    name: str = typer.Argument(..., help="Collection name."),
    client_id: str = typer.Argument(..., help="Client ID (GUID) or host name of a direct member."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Remove a direct member (it stays a member if a rule or include still holds it).

    Example: qm collection remove "Lab computers" 6f1d2c3e-...
    """
    _summary(SiteLink(site, token).post(_path(name, "members", "remove"), {"client_id": client_id}))


@rule_app.command("add")
@handles_errors
@shows_text_errors
def rule_add(
    name: str = typer.Argument(..., help="Collection name."),
    rule: str = typer.Argument(..., help=RULE_HELP),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Add a query rule; membership is re-evaluated at once.

    Example: qm collection rule add Lab 'free_disk_mb > 2048 and ip in 10.1.0.0/16'
    """
    _summary(SiteLink(site, token).post(_path(name, "rules"), {"rule": rule}))


@rule_app.command("remove")
@handles_errors
@shows_text_errors
def rule_remove(
    name: str = typer.Argument(..., help="Collection name."),
    rule: str = typer.Argument(..., help="The rule, as `qm collection show` lists it."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Remove a query rule (any spelling that means the same rule).

    Example: qm collection rule remove Lab 'free_disk_mb > 2048'
    """
    _summary(SiteLink(site, token).post(_path(name, "rules", "remove"), {"rule": rule}))


def _link(kind: str, name: str, other: str, remove: bool, site: str, token: str) -> None:
    path = _path(name, kind + "s", "remove") if remove else _path(name, kind + "s")
    _summary(SiteLink(site, token).post(path, {"collection": other}))


@app.command("include")
@handles_errors
def include(
    name: str = typer.Argument(..., help="Collection name."),
    other: str = typer.Argument(..., help="The collection to include."),
    remove: bool = typer.Option(False, "--remove", help="Stop including it."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Make every member of OTHER a member of NAME (unless NAME excludes it).

    Example: qm collection include "All labs" "Lab 2"
    """
    _link("include", name, other, remove, site, token)


@app.command("exclude")
@handles_errors
def exclude(
    name: str = typer.Argument(..., help="Collection name."),
    other: str = typer.Argument(..., help="The collection to exclude."),
    remove: bool = typer.Option(False, "--remove", help="Stop excluding it."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Keep every member of OTHER out of NAME, however it would be a member.

    Example: qm collection exclude Lab Servers
    """
    _link("exclude", name, other, remove, site, token)


@window_app.command("add")
@handles_errors
def window_add(
    name: str = typer.Argument(..., help="Collection name."),
    window: str = typer.Argument(..., help=WINDOW_HELP),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Add a maintenance window: mandatory runs on members wait for one.

    Example: qm collection window add Lab 'Mon-Fri 01:00-03:00 Europe/Berlin'
    """
    data = SiteLink(site, token).post(_path(name, "windows"), {"window": window})
    out.print("windows: " + ("; ".join(data["windows"]) or "none"), markup=False)


@window_app.command("remove")
@handles_errors
def window_remove(
    name: str = typer.Argument(..., help="Collection name."),
    window: str = typer.Argument(..., help="The window to remove."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Remove a maintenance window (any spelling of the same window).

    Example: qm collection window remove Lab 'sat 22:00-02:00 utc'
    """
    data = SiteLink(site, token).post(_path(name, "windows", "remove"), {"window": window})
    out.print("windows: " + ("; ".join(data["windows"]) or "none"), markup=False)


@app.command("show")
@handles_errors
def show(
    name: str = typer.Argument(...),
    as_json: bool = JsonOption,
    limit: int = typer.Option(1000, "--limit", min=0, help="At most this many members."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Members of a collection and why each is one; its rules, includes, excludes, windows.

    Example: qm collection show "Lab computers" --json
    """
    data = SiteLink(site, token).get(_path(name), limit=limit)
    if as_json:
        print_json(data)
        return
    _summary(data)
    for label, key in (
        ("rule", "rules"),
        ("include", "includes"),
        ("exclude", "excludes"),
        ("window", "windows"),
    ):
        for value in data[key]:
            out.print(f"  {label}: {value}", markup=False)
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
        print_table(data["collections"], ["name", "member_count", "rule_count", "comment"])
