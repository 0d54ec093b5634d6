"""The house style holds over src, tests and bench: `ruff format`, `ruff check` and `mypy`
(configured in pyproject.toml) find nothing, so the test command checks them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["src", "tests", "bench"]


@pytest.mark.parametrize(
    "command",
    [["ruff", "format", "--check", *CHECKED], ["ruff", "check", *CHECKED], ["mypy"]],
    ids=["ruff format", "ruff check", "mypy"],
)
def test_the_code_passes(command: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"{' '.join(command)}:\n{run.stdout}{run.stderr}"
