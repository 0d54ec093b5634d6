"""Programs from outside the project that tests need, and what to install when one is missing.

scripts/debian-packages.txt is the one list: scripts/test installs from it, and a fixture
that needs a program calls `program(name)`, which fails the test with one line naming the
Debian package when the program is not on PATH (never a traceback from deep inside).
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

PACKAGE_LIST = Path(__file__).resolve().parents[1] / "scripts" / "debian-packages.txt"


@cache
def debian_packages() -> dict[str, str]:
    """{program: Debian package} from scripts/debian-packages.txt."""
    packages: dict[str, str] = {}
    for line in PACKAGE_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, program = line.split()[:2]
            packages[program] = package
    return packages


def missing_program_message(name: str) -> str:
    package = debian_packages()[name]
    return (
        f"`{name}` is not installed (not on PATH): install the Debian package {package} "
        f"(apt-get install -y {package}), or run scripts/test, which installs what the tests need"
    )


def program(name: str) -> str:
    """The path of `name` on PATH; fails the test in one line when it is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(missing_program_message(name), pytrace=False)
    return found
