"""What packages/client ships may import only what that distribution installs.

The end-to-end test (tests/e2e/test_client_distribution.py) installs it for real; this one
reads every shipped module's imports, so a new `import sqlalchemy` in core/ fails at once.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import quartermaster

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "packages" / "client" / "pyproject.toml").read_text())
ALLOWED_THIRD_PARTY = {"httpx", "cryptography", "typer"}


def shipped_modules() -> list[Path]:
    mapping = PROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    files: list[Path] = []
    for source in mapping:
        path = (ROOT / "packages" / "client" / source).resolve()
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_shipped_modules_import_only_the_client_distributions_dependencies() -> None:
    files = shipped_modules()
    assert len(files) > 40
    ours = {str(p.relative_to(ROOT / "src")).removesuffix(".py").replace("/", ".") for p in files}
    ours = {name.removesuffix(".__init__") for name in ours}
    wrong: dict[str, set[str]] = {}
    for path in files:
        for name in imported(path):
            top = name.split(".")[0]
            if top == "quartermaster":
                missing = name not in ours and not any(o.startswith(name + ".") for o in ours)
                if missing and name.rsplit(".", 1)[0] not in ours:
                    wrong.setdefault(str(path), set()).add(name)
            elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY:
                wrong.setdefault(str(path), set()).add(name)
    assert wrong == {}


def test_the_dependencies_and_version_agree_with_the_full_distribution() -> None:
    full = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    client = PROJECT["project"]["dependencies"]
    assert {d.split(">")[0] for d in client} == ALLOWED_THIRD_PARTY
    assert set(client) <= set(full)  # the same lower bounds
    assert PROJECT["project"]["version"] == quartermaster.__version__
    assert PROJECT["project"]["scripts"]["qm-client"] == "quartermaster.cli.client_commands:app"
