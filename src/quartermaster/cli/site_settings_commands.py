"""`qm site settings`: site-wide settings kept in the database (every site process agrees);
`qm site status`: how the site is doing."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from quartermaster.cli.site_commands import app
from quartermaster.cli.site_link import (
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    handles_errors,
    out,
    print_json,
)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "yes", "on", "1"):
        return True
    if value.lower() in ("false", "no", "off", "0"):
        return False
    raise typer.BadParameter(f"{name} takes true or false")


def _json_list(value: str | None, name: str) -> list[object] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name} is not JSON: {exc}") from None
    if not isinstance(parsed, list):
        raise typer.BadParameter(f"{name} takes a JSON list of rules")
    return parsed


@app.command("settings")
@handles_errors
def settings(
    require_approval: str = typer.Option(
        None,
        "--require-approval",
        metavar="true|false",
        help="New clients wait for `qm client approve` before they get policy.",
    ),
    output_message_bytes: int = typer.Option(
        None,
        "--program-output-message-bytes",
        metavar="BYTES",
        help="Most bytes of a failed program's output kept per status message (1024-1048576).",
    ),
    output_total_bytes: int = typer.Option(
        None,
        "--program-output-total-bytes",
        metavar="BYTES",
        help="Most bytes of program output kept in all; the oldest goes first.",
    ),
    bandwidth_rules: str = typer.Option(
        None,
        "--bandwidth-rules",
        metavar="JSON",
        help="Download limits, first match per client: "
        '[{"boundary": "10.1.0.0/16", "rate": 2000000, "schedule": [{"days": "mon-fri", '
        '"from": "08:00", "to": "18:00", "rate": 500000}]}, {"rate": null}] (docs/operations.md).',
    ),
    content_grace: int = typer.Option(
        None,
        "--content-grace",
        min=0,
        metavar="SECONDS",
        help="How long pruned or replaced versions stay in the library and on DPs.",
    ),
    gc_interval: int = typer.Option(
        None,
        "--gc-interval",
        min=0,
        metavar="SECONDS",
        help="How often the site runs a garbage collection job (0: never; default 3600).",
    ),
    peer_cache: str = typer.Option(
        None,
        "--peer-cache",
        metavar="on|off",
        help="Clients run with --peer-listen serve their verified cache to their boundary.",
    ),
    peer_cache_boundaries: str = typer.Option(
        None,
        "--peer-cache-boundaries",
        metavar="JSON",
        help='Per-boundary overrides of --peer-cache: [{"boundary": "10.1.0.0/16", '
        '"peer_cache": true}] (the most specific range wins).',
    ),
    peer_lease: int = typer.Option(
        None,
        "--peer-lease",
        min=5,
        max=3600,
        metavar="SECONDS",
        help="How long the one client elected per boundary fetches a version from a DP "
        "while the others wait for it (longer than one copy takes over the WAN link).",
    ),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Show the site settings, or change them (admins only).

    Example: qm site settings --require-approval true
    Example: qm site settings --peer-cache on
    """
    link = SiteLink(site, token)
    change: dict[str, object] = {
        "require_approval": _flag(require_approval, "--require-approval"),
        "program_output_message_bytes": output_message_bytes,
        "program_output_total_bytes": output_total_bytes,
        "bandwidth_rules": _json_list(bandwidth_rules, "--bandwidth-rules"),
        "content_grace_seconds": content_grace,
        "gc_interval_seconds": gc_interval,
        "peer_cache": _flag(peer_cache, "--peer-cache"),
        "peer_cache_boundaries": _json_list(peer_cache_boundaries, "--peer-cache-boundaries"),
        "peer_lease_seconds": peer_lease,
    }
    change = {k: v for k, v in change.items() if v is not None}
    data = link.post("/api/v1/settings", change) if change else link.get("/api/v1/settings")
    if as_json:
        print_json(data)
    else:
        for name, value in sorted(data.items()):
            out.print(f"{name}: {str(value).lower() if isinstance(value, bool) else value}")


@app.command("status")
@handles_errors
def status(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """The site's state: its embedded DP (and the problem that stopped it, if any) and its
    background jobs.

    Example: qm site status
    """
    data = SiteLink(site, token).get("/api/v1/site")
    if as_json:
        print_json(data)
        return
    out.print(f"site {data['site_code']} ({data['name']}), content at {data['content_url']}")
    out.print(f"content library: {data.get('library', '')}", markup=False)
    embedded = data.get("embedded_dp")
    if embedded is None:
        out.print("embedded DP: none")
    elif embedded.get("problem"):
        out.print(
            f"embedded DP {escape(embedded['name'])}: [bold red]failed[/]: "
            f"{escape(embedded['problem'])}"
        )
    else:
        contact = embedded["last_contact"] or "never"
        out.print(f"embedded DP {escape(embedded['name'])}: ok, last contact {contact}")
    jobs = data.get("jobs", {})
    out.print(
        f"jobs: {jobs.get('running', 0)} running, {jobs.get('queued', 0)} queued, "
        f"{jobs.get('failed', 0)} failed (qm job list)"
    )
