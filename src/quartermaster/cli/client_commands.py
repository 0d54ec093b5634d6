"""`qm client ...`: the client agent on a managed computer."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the client agent on a managed computer.", no_args_is_help=True)
