"""The layering rules of docs/architecture.md hold: `lint-imports` checks the contracts in
pyproject.toml, and fails when one import breaks them (shown on copies of the code, each with
one wrong import added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, on the package found under source_root."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_keeps_every_layering_contract() -> None:
    run = lint_imports(ROOT / "src")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


# (module that gets the wrong import, what it imports, the contract it breaks)
WRONG_IMPORTS = [
    ("core/errors.py", "quartermaster.site.models", "core imports nothing of ours"),
    ("client/agent.py", "quartermaster.site.db", "client and dp never import site"),
    ("dp/store.py", "quartermaster.site.identity.keys", "client and dp never import site"),
    ("site/identity/audit.py", "quartermaster.cli.main", "nothing imports cli"),
    ("site/status/messages.py", "quartermaster.console.formatting", "nothing but cli imports"),
    ("console/formatting.py", "quartermaster.site.api.routes.packages", "console imports site"),
    ("site/content/packages.py", "quartermaster.site.targeting.membership", "rooms in site/"),
    ("site/identity/accounts.py", "quartermaster.site.context", "rooms in site/"),
]


@pytest.mark.parametrize(("module", "imported", "contract"), WRONG_IMPORTS)
def test_one_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, imported: str, contract: str
) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "quartermaster",
        copy / "quartermaster",
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
    )
    target = copy / "quartermaster" / module
    target.write_text(target.read_text() + f"\nimport {imported}  # deliberately wrong\n")

    run = lint_imports(copy)

    assert run.returncode == 1, run.stdout + run.stderr
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, run.stdout
    assert imported in broken, run.stdout
