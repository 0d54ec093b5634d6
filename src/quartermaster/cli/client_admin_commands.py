"""`qm client list|approve|block|rekey|notify`: the administrator's side of the client group."""

from __future__ import annotations

import typer

from quartermaster.cli.client_commands import app
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

ClientIdArgument = typer.Argument(
    ..., metavar="ID", help="Client ID (GUID) or host name, from `qm client list`."
)


@app.command("list")
@handles_errors
def list_(
    approval: str = typer.Option(None, "--approval", help="pending, approved or blocked."),
    search: str = typer.Option("", "--search", help="Part of the host name."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Registered clients with their approval state.

    Example: qm client list --approval pending
    """
    data = SiteLink(site, token).get(
        "/api/v1/clients", approval=approval, search=search, limit=limit
    )
    if as_json:
        print_json(data)
    else:
        print_table(
            data["clients"],
            [
                "client_id",
                "hostname",
                "os",
                "agent_version",
                "approval",
                "rekey_required",
                "registered",
                "last_policy_request",
            ],
        )


def _set(client_id: str, verb: str, site: str, token: str) -> dict[str, object]:
    answer: dict[str, object] = SiteLink(site, token).post(f"/api/v1/clients/{client_id}/{verb}")
    return answer


@app.command("approve")
@handles_errors
def approve(
    client_id: str = ClientIdArgument, site: str = SiteOption, token: str = TokenOption
) -> None:
    """Approve a pending client (or unblock a blocked one): it gets policy from its next poll.

    Example: qm client approve 6f1d2c3e-0000-4000-8000-000000000001
    """
    answer = _set(client_id, "approve", site, token)
    out.print(f"client {client_id} ({answer['hostname']}) approved")


@app.command("block")
@handles_errors
def block(
    client_id: str = ClientIdArgument, site: str = SiteOption, token: str = TokenOption
) -> None:
    """Block a client: no policy, no manifests, no content locations, no status accepted.

    Example: qm client block 6f1d2c3e-0000-4000-8000-000000000001
    """
    answer = _set(client_id, "block", site, token)
    out.print(f"client {client_id} ({answer['hostname']}) blocked")


@app.command("rekey")
@handles_errors
def rekey(
    client_id: str = ClientIdArgument, site: str = SiteOption, token: str = TokenOption
) -> None:
    """Make a client replace its secret at its next contact.

    Its old secret then only buys a new one. For a secret known to be stolen, block the
    client and have the computer register again instead.

    Example: qm client rekey 6f1d2c3e-0000-4000-8000-000000000001
    """
    answer = _set(client_id, "rekey", site, token)
    out.print(f"client {client_id} ({answer['hostname']}) must re-key at its next contact")


@app.command("notify")
@handles_errors
def notify(
    client_ids: list[str] = typer.Argument(
        None, metavar="[ID]...", help="Client IDs from `qm client list`."
    ),
    collection: str = typer.Option(None, "--collection", help="Every member of this collection."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Ask clients to poll for policy at their next contact instead of their next interval.

    Example: qm client notify --collection "All Linux"
    """
    ids = client_ids or []
    if not ids and collection is None:
        raise typer.BadParameter("name client IDs, --collection, or both")
    answer = SiteLink(site, token).post(
        "/api/v1/clients/notify", {"client_ids": ids, "collection": collection}
    )
    out.print(f"{answer['notified']} client(s) will poll for policy at their next contact")
