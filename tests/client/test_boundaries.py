"""The client package stands alone: it never imports the site server or the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import quartermaster.client

FORBIDDEN = ("quartermaster.site", "quartermaster.cli")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_client_module_imports_the_site_or_the_cli() -> None:
    folder = Path(quartermaster.client.__file__).parent
    offenders = {
        f"{path.name}: {name}"
        for path in folder.glob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert len(list(folder.glob("*.py"))) > 10
    assert offenders == set()
