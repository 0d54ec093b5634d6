"""`qm audit`: who changed what on the site, newest first; `qm audit verify|export`: the
hash-chained trust log of publishes, approvals, deployments and key changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from quartermaster.cli.account_commands import parse_when
from quartermaster.cli.site_link import (
    CommandError,
    JsonOption,
    SiteLink,
    SiteOption,
    TokenOption,
    fail,
    handles_errors,
    out,
    print_json,
    print_table,
)

app = typer.Typer(help="The audit log, and the hash-chained trust log.")


@app.callback(invoke_without_command=True)
@handles_errors
def audit(
    context: typer.Context,
    account: str = typer.Option(None, "--account", help="Only this account's entries."),
    action: str = typer.Option(None, "--action", help="Only this action, e.g. dp.retire."),
    since: str = typer.Option(None, "--since", help="7d, 12h (ago) or an ISO time."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """The audit log: time, account, action, object, outcome and details of every change.

    Example: qm audit --account alice --since 7d --json
    """
    if context.invoked_subcommand:
        return
    data = SiteLink(site, token).get(
        "/api/v1/audit",
        account=account,
        action=action,
        since=parse_when(since, past=True) if since else None,
        limit=limit,
    )
    if as_json:
        print_json(data)
        return
    for entry in data["entries"]:  # details (request, route, source) are in --json
        entry["time"] = entry["time"][:19].replace("T", " ")
    print_table(
        data["entries"],
        ["time", "account", "action", "object", "outcome"],
        "audit log (UTC, newest first)",
    )


def _entries(home: Path | None, copy: Path | None, site: str, token: str) -> list[Any]:
    if copy is not None:
        try:
            data = json.loads(copy.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {copy}: {exc}") from None
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise CommandError(f"{copy} is not a trust log copy", "make one with `qm audit export`")
        return entries
    if home is not None:
        from quartermaster.site.context import SiteContext
        from quartermaster.site.identity import trust_log

        ctx = SiteContext.open(home)
        try:
            with ctx.db.session() as session:
                return trust_log.all_entries(session)
        finally:
            ctx.close()
    link, after = SiteLink(site, token), 0
    found: list[Any] = []
    while True:
        page = link.get("/api/v1/audit/trust-log", after=after)["entries"]
        if not page:
            return found
        found += page
        after = page[-1]["seq"]


CopyOption = typer.Option(None, "--copy", help="A copy made by `qm audit export`.")
HomeOption = typer.Option(None, "--home", help="Read the site home's database directly.")


@app.command("verify")
@handles_errors
def verify(
    home: Path = HomeOption,
    copy: Path = CopyOption,
    head: str = typer.Option("", "--head", help="SEQ:HASH seen before; the log must extend it."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Check the trust log's hash chain: every entry names its predecessor's hash.

    A removed, altered or inserted entry is reported by number. With --head, the log must
    also contain that entry unchanged (an auditor's or a client's earlier view).

    Example: qm audit verify --home ./site
    """
    from quartermaster.core.log_chain import LogBroken
    from quartermaster.site.identity import trust_log

    entries = _entries(home, copy, site, token)
    try:
        result = trust_log.verify(entries)
        if head:
            seq_text, _, digest = head.partition(":")
            seq = int(seq_text)
            if seq > len(entries) or (seq > 0 and entries[seq - 1].get("hash") != digest):
                raise LogBroken(f"the log no longer holds entry {seq} as seen ({digest[:16]}...)")
    except LogBroken as exc:
        fail(f"trust log broken: {exc.message}", exc.hint, code=3)
    except ValueError:
        raise CommandError("--head is SEQ:HASH") from None
    head_now = result["head"]
    out.print(
        f"trust log intact: {result['entries']} entries, head {head_now['seq']}:{head_now['hash']}"
    )


@app.command("export")
@handles_errors
def export(
    out_file: Path = typer.Option(..., "--out", help="Where to write the copy (JSON)."),
    home: Path = HomeOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Copy the trust log to a file, to keep elsewhere and verify later.

    Example: qm audit export --home ./site --out /media/usb/trust-log.json
    """
    from quartermaster.core.durable_files import write_atomic

    entries = _entries(home, None, site, token)
    write_atomic(out_file, json.dumps({"entries": entries}, indent=1).encode() + b"\n")
    out.print(f"{len(entries)} entries written to {out_file}")
