"""How admin commands reach the site: the admin API with the token, over `core.site_transport`.

Admin commands trust the system's CAs or the file SSL_CERT_FILE names, and use the proxy the
environment gives, as the client and DPs do.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from quartermaster.core.errors import QMError
from quartermaster.core.site_transport import Advice, SiteTransport

P = ParamSpec("P")
R = TypeVar("R")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

SiteOption = typer.Option(
    None,
    "--site",
    envvar="QM_SITE",
    help="Site server URL, e.g. http://127.0.0.1:8440 (or QM_SITE).",
)
TokenOption = typer.Option(
    None,
    "--token",
    envvar="QM_TOKEN",
    help="Admin API token, or @FILE to read it from FILE (relative to the current folder), "
    "e.g. @/srv/qm/site/admin.token (or QM_TOKEN).",
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
ADVICE = Advice(
    who="this command",
    unreachable="check --site (or QM_SITE) and that `qm site serve` is running",
    untrusted="admin commands trust the system's CAs; set SSL_CERT_FILE to the PEM file of "
    "the site's CA (docs/security.md)",
    credential="pass a valid token with --token or QM_TOKEN (see SITE_HOME/admin.token)",
)
TIMEOUT = 600.0  # a package snapshot answers only when the whole folder is stored


class CommandError(QMError):
    """An error a command reports and exits on."""


def fail(message: str, hint: str = "", code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error:", "bold red"), " ", message))
    if hint:
        err.print(Text.assemble(("hint:", "yellow"), " ", hint))
    raise typer.Exit(code)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into a message on stderr and a non-zero exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except QMError as exc:
            fail(exc.message, exc.hint)

    return wrapper


class SiteLink:
    def __init__(self, site: str | None, token: str | None) -> None:
        if not site:
            raise CommandError("no site server given", "pass --site URL or set QM_SITE")
        if not token:
            raise CommandError(
                "no admin token given", "pass --token or set QM_TOKEN (see SITE_HOME/admin.token)"
            )
        self.site = SiteTransport(site, ADVICE, credential=_read_token(token), timeout=TIMEOUT)

    def call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.site.json(self.site.request(method, path, json=body, params=clean))

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body=body if body is not None else {})


def _read_token(token: str) -> str:
    """Accept the token itself or @FILE: FILE relative to the current folder, as a shell would
    read it, and when it cannot be read the error names the absolute path it tried."""
    if not token.startswith("@"):
        return token.strip()
    name = token[1:]
    path = Path(name).expanduser()
    looked = path if path.is_absolute() else Path.cwd() / path
    try:
        text = looked.read_text(encoding="utf-8").strip()
    except OSError as exc:
        where = "" if str(looked) == name else f" (looked at {looked})"
        hint = (
            "@FILE is read from the current folder; use an absolute path, e.g. "
            "QM_TOKEN=@$PWD/site/admin.token in the folder where you ran `qm site init`"
            if not path.is_absolute()
            else "the admin token is SITE_HOME/admin.token, written by `qm site init`"
        )
        raise CommandError(f"cannot read token file {name}{where}: {exc.strerror}", hint) from None
    if not text:
        raise CommandError(f"token file {looked} is empty", "it should hold one API token")
    return text


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


WHOLE_VALUE = re.compile(r"[A-Za-z0-9_.:+\-]{1,64}")  # an ID, hash, time, number or name
NARROWEST_TEXT = 16  # a column of words narrower than this is read as one word a line


def print_table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    """A table that never cuts a value. IDs, hashes and times stay on one line, whole; text
    wraps. Piped, the table is as wide as it needs (one line a row, for grep); when a terminal
    is too narrow for that, each row is printed as `column: value` lines instead."""
    cells = [["" if row.get(c) is None else str(row[c]) for c in columns] for row in rows]
    whole = [
        bool(cells) and all(WHOLE_VALUE.fullmatch(r[i]) or not r[i] for r in cells)
        for i in range(len(columns))
    ]
    console = (
        out
        if out.is_terminal or "COLUMNS" in os.environ
        else Console(highlight=False, soft_wrap=True, width=100_000)
    )
    widths = [max([len(r[i]) for r in cells] + [1]) for i in range(len(columns))]
    needed = (
        sum(widths[i] if whole[i] else min(widths[i], NARROWEST_TEXT) for i in range(len(columns)))
        + 3 * len(columns)
        + 1
    )  # a border and a space either side of each cell
    if needed > console.width:
        _print_records(console, cells, columns, title)
        return
    table = Table(title=title)
    for i, column in enumerate(columns):
        if whole[i]:
            table.add_column(column, min_width=widths[i], no_wrap=True, overflow="fold")
        else:
            table.add_column(column, overflow="fold")
    for row_cells in cells:
        table.add_row(*(Text(cell) for cell in row_cells))
    console.print(table)


def _print_records(
    console: Console, cells: list[list[str]], columns: list[str], title: str | None
) -> None:
    if title:
        console.print(title, markup=False)
    label = max(len(c) for c in columns) + 1
    for n, row_cells in enumerate(cells):
        if n:
            console.print()
        for column, cell in zip(columns, row_cells, strict=True):
            console.print(f"{column + ':':<{label}} {cell}", markup=False)
