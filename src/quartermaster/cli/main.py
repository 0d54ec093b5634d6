"""Entry point of `qm`: every command group lives in its own module."""

from __future__ import annotations

import typer

from quartermaster.cli import client_commands, dp_commands

app = typer.Typer(
    name="qm",
    help="Quartermaster: publish packages, distribute them to DPs, deploy programs to clients.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(client_commands.app, name="client")
app.add_typer(dp_commands.app, name="dp")
