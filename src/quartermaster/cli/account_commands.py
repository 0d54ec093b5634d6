"""`qm account ...` and `qm token ...`: who may administer the site, and their API tokens."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta

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

app = typer.Typer(help="Administrator accounts: admin, operator, viewer.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)

_RELATIVE = re.compile(r"([+-]?)(\d{1,5})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, past: bool = False) -> str:
    """An ISO time from `+30d` / `12h` (from now; back from now when `past`) or an ISO time.

    Times without a zone are taken as local time.
    """
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(3)]: int(match.group(2))})
        when = datetime.now(UTC) + (-delta if past else delta)
        return when.isoformat()
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{text!r} is not a time", "use +30d, 12h, 2w, or an ISO time such as 2027-01-01T00:00Z"
        ) from None
    return (parsed if parsed.tzinfo else parsed.astimezone()).isoformat()


def read_password(from_stdin: bool, confirm: bool = True) -> str:
    """From stdin (one line, for scripts) or asked for twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input", 'e.g. printf %s "$PW" | qm ...')
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@app.command("create")
@handles_errors
def create(
    name: str = typer.Argument(..., help="Lower-case letters, digits, . _ @ -"),
    role: str = typer.Option(..., "--role", help="admin, operator or viewer."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a console password from stdin."
    ),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Create an account (without --password-stdin it has no password: tokens only).

    Example: printf %s "$PW" | qm account create alice --role operator --password-stdin
    """
    body: dict[str, object] = {"name": name, "role": role}
    if password_stdin:
        body["password"] = read_password(True)
    account = SiteLink(site, token).post("/api/v1/accounts", body)
    out.print(f"account {account['name']} ({account['role']}) created")


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """Accounts with their role and state.

    Example: qm account list --json
    """
    data = SiteLink(site, token).get("/api/v1/accounts")
    if as_json:
        print_json(data)
    else:
        print_table(data["accounts"], ["name", "role", "disabled", "has_password", "created"])


@app.command("disable")
@handles_errors
def disable(
    name: str = typer.Argument(...), site: str = SiteOption, token: str = TokenOption
) -> None:
    """Disable an account: its password and every one of its tokens stop working at once.

    Example: qm account disable alice
    """
    SiteLink(site, token).post(f"/api/v1/accounts/{name}/disable")
    out.print(f"account {name} disabled")


@app.command("enable")
@handles_errors
def enable(
    name: str = typer.Argument(...), site: str = SiteOption, token: str = TokenOption
) -> None:
    """Enable a disabled account again (its unrevoked, unexpired tokens work again).

    Example: qm account enable alice
    """
    SiteLink(site, token).post(f"/api/v1/accounts/{name}/enable")
    out.print(f"account {name} enabled")


@app.command("role")
@handles_errors
def role(
    name: str = typer.Argument(...),
    new_role: str = typer.Argument(..., metavar="ROLE", help="admin, operator or viewer."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Change an account's role; it applies to its tokens from their next request.

    Example: qm account role alice viewer
    """
    SiteLink(site, token).post(f"/api/v1/accounts/{name}/role", {"role": new_role})
    out.print(f"account {name} is now {new_role}")


@app.command("password")
@handles_errors
def password(
    name: str = typer.Argument(...),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Set an account's console password (asked for twice, unless --password-stdin).

    Example: qm account password admin
    """
    SiteLink(site, token).post(
        f"/api/v1/accounts/{name}/password", {"password": read_password(password_stdin)}
    )
    out.print(f"password of {name} set")


@app.command("whoami")
@handles_errors
def whoami(as_json: bool = JsonOption, site: str = SiteOption, token: str = TokenOption) -> None:
    """The account the token belongs to, its role and what it may do.

    Example: qm account whoami
    """
    data = SiteLink(site, token).get("/api/v1/me")
    if as_json:
        print_json(data)
    else:
        out.print(f"{data['account']} ({data['role']}), token {data['token_id']}")


@token_app.command("create")
@handles_errors
def token_create(
    account: str = typer.Option(None, "--account", help="Whose token (default: your own)."),
    expires: str = typer.Option(None, "--expires", help="+30d, +12h, +2w or an ISO time."),
    name: str = typer.Option("", "--name", help="A label, e.g. ci."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Create an API token and print it alone: it is shown this once, the site keeps a hash.

    Example: QM_TOKEN=$(qm token create --account ci-bot --expires +30d)
    """
    body = {"account": account, "name": name, "expires": parse_when(expires) if expires else None}
    answer = SiteLink(site, token).post("/api/v1/tokens", body)
    print(answer["token"])


@token_app.command("list")
@handles_errors
def token_list(
    account: str = typer.Option(None, "--account"),
    as_json: bool = JsonOption,
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Tokens (never their secrets): admins see everyone's, others their own.

    Example: qm token list --account alice
    """
    data = SiteLink(site, token).get("/api/v1/tokens", account=account)
    if as_json:
        print_json(data)
    else:
        print_table(data["tokens"], ["id", "account", "name", "state", "created", "expires"])


@token_app.command("revoke")
@handles_errors
def token_revoke(
    token_id: int = typer.Argument(..., metavar="ID", help="From `qm token list`."),
    site: str = SiteOption,
    token: str = TokenOption,
) -> None:
    """Revoke a token: it stops working at its next request.

    Example: qm token revoke 7
    """
    SiteLink(site, token).post(f"/api/v1/tokens/{token_id}/revoke")
    out.print(f"token {token_id} revoked")
