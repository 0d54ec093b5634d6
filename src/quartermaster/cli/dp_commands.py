"""`qm dp ...`: distribution points."""

from __future__ import annotations

import typer

app = typer.Typer(help="Distribution points: serve content near the clients.", no_args_is_help=True)
