"""Tables of admin commands never cut a value: not in a pipe, not in an 80-column terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HASH = "1948479d6191e1" + "ab" * 25
MESSAGE: dict[str, object] = {
    "time": "2026-12-03T06:20:50.000Z",
    "message_id": 10008,
    "severity": "informational",
    "component": "ExecutionManager",
    "text": "Deployment QM120000, package QM100001, program Install: program succeeded.",
}
VERSION: dict[str, object] = {
    "source_version": 1,
    "package_hash": HASH,
    "created": "2026-12-03T06:20:50.000Z",
}
STATE: dict[str, object] = {
    "hostname": "vm",
    "state": "succeeded",
    "detail": "a few words of detail " * 4,
}


def printed(rows: list[dict[str, object]], columns: list[str], env: dict[str, str]) -> str:
    """What print_table writes, in a process of its own as a command would run it."""
    code = (
        "import json, sys\n"
        "from quartermaster.cli.site_link import print_table\n"
        "print_table(json.loads(sys.argv[1]), json.loads(sys.argv[2]), 'title')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, json.dumps(rows), json.dumps(columns)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


@pytest.mark.parametrize("columns", [None, "80", "40"])
def test_ids_hashes_and_times_are_never_cut(columns: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    for row in (MESSAGE, VERSION, STATE):
        text = printed([row, row], list(row), env)
        assert "…" not in text, text
        lines = text.splitlines()
        for value in row.values():
            if " " not in str(value) and len(str(value)) > 3:
                assert sum(str(value) in line for line in lines) == 2, text  # whole, each row
        if columns:
            assert all(len(line) <= int(columns) for line in lines if "│" in line), text
    piped = printed([MESSAGE], list(MESSAGE), env) if not columns else ""
    if piped:  # a pipe: one line a row, every value on it, for grep
        row_line = next(line for line in piped.splitlines() if "10008" in line)
        assert all(str(value) in row_line for value in MESSAGE.values()), piped


def test_a_narrow_terminal_prints_rows_as_records() -> None:
    env = {**os.environ, "COLUMNS": "80"}
    text = printed([VERSION], list(VERSION), env)
    assert text.splitlines() == [
        "title",
        "source_version: 1",
        f"package_hash:   {HASH}",
        "created:        2026-12-03T06:20:50.000Z",
    ]
