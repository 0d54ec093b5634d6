"""The logging options of the long-running commands (`qm site serve`, `qm dp serve`,
`qm client run`): one configuration, core/logging_setup.py."""

from __future__ import annotations

from pathlib import Path

import typer

from quartermaster.core import logging_setup

LogFormatOption = typer.Option(
    "text",
    "--log-format",
    help="text (for people) or json (one object per line, for a log collector).",
)
LogFileOption = typer.Option(
    None,
    "--log-file",
    dir_okay=False,
    help="Also write the log to this file, rotated at 10 MB (5 old files kept).",
)
LogLevelOption = typer.Option("info", "--log-level", help="debug, info, warning or error.")


def setup_logging(log_format: str, log_file: Path | None, level: str) -> None:
    """Configure logging or stop with a clear message (exit code 2, as for a bad option)."""
    try:
        logging_setup.configure(log_format.lower(), level.lower(), log_file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot open --log-file {log_file}: {exc.strerror}") from None
