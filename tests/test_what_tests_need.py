"""What the tests need from outside says so in one line, and test processes clean up.

A test whose program (nginx, Chromium, ...) is missing, or whose PostgreSQL does not answer,
fails with one line naming what to install or start; a site that never becomes healthy
leaves no process behind and no log file open.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import postgres_unreachable_message
from tests.e2e.ports import reserve_ports
from tests.e2e.processes import start_site
from tests.required_programs import (
    PACKAGE_LIST,
    debian_packages,
    missing_program_message,
    program,
)

ROOT = Path(__file__).resolve().parents[1]
NGINX_TEST = "tests/e2e/test_distribution_points.py::test_stock_nginx_serves_a_dp_store_to_clients"
BROWSER_TEST = "tests/console/test_console.py::test_signing_out_ends_the_session"
POSTGRES_TEST = "tests/database/test_migrations.py::test_models_need_no_new_migration"


def path_without(folder: Path, hidden: set[str]) -> str:
    """A PATH of one folder that links every program on PATH except the hidden ones."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for entry in sorted(Path(directory).glob("*")) if Path(directory).is_dir() else []:
            link = folder / entry.name
            if entry.name in hidden or link.exists() or not os.access(entry, os.X_OK):
                continue
            link.symlink_to(entry)
    return str(folder)


def test_the_package_list_names_the_programs_fixtures_ask_for() -> None:
    """Every program the tests ask for by `program(name)` is in the list, and every listed
    program is asked for (PostgreSQL's pg_ctlcluster by scripts/test and tests/conftest.py)."""
    tests = Path(__file__).resolve().parent
    asked = {
        match
        for path in tests.rglob("*.py")
        for match in re.findall(r'\bprogram\("([^"]+)"\)', path.read_text())
    }
    assert asked | {"pg_ctlcluster"} == set(debian_packages()), PACKAGE_LIST.read_text()


def stand_in(folder: Path, name: str, script: str) -> None:
    """A program on the test's PATH in place of the real one (apt-get without a network)."""
    path = folder / name
    path.unlink(missing_ok=True)
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_a_fresh_clone_without_the_programs_says_what_to_install(tmp_path: Path) -> None:
    """The README's test command in a clean clone, with nginx, Chromium and PostgreSQL absent
    from PATH and apt-get failing as it does offline: scripts/test says what it tried to
    install and runs the tests anyway; each test that needs a missing program fails in one
    line naming its package, and PostgreSQL in one line saying how to start it."""
    clone = tmp_path / "clone"
    subprocess.run([program("git"), "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")  # the venv of this checkout, not a new one
    hidden = {"nginx", "chromium", "pg_ctlcluster", "tinyproxy", "apt-get", "sudo"}
    bin_folder = tmp_path / "bin"
    apt_log = tmp_path / "apt-get.log"
    closed = reserve_ports(1)  # reserved here, so nothing listens on it
    env = {
        **{name: value for name, value in os.environ.items() if name != "PYTEST_ADDOPTS"},
        "PATH": path_without(bin_folder, hidden),
        "PYTHONPATH": str(clone / "src"),
        "QM_TEST_POSTGRES": f"postgresql://postgres@127.0.0.1:{closed}/postgres",
    }
    stand_in(bin_folder, "apt-get", f'echo "$*" >>{apt_log}; echo "E: no network" >&2; exit 100')
    stand_in(bin_folder, "sudo", 'exec "$@"')
    tests = [f"{NGINX_TEST}[postgresql]", BROWSER_TEST, f"{POSTGRES_TEST}[postgresql]"]
    run = subprocess.run(
        ["scripts/test", "-q", "-n", "0", "-p", "no:cacheprovider", *tests],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert apt_log.read_text().splitlines() == ["update -qq"], out  # offline: update fails
    wanted = [p for p in debian_packages().values() if p in {"nginx", "chromium", "postgresql"}]
    said = [line for line in run.stderr.splitlines() if line.startswith("scripts/test: ")]
    assert said[0].startswith("scripts/test: installing Debian packages: "), said
    assert set(wanted) <= set(said[0].split(": ")[2].split()), said
    assert "the tests that need them fail, each naming its package" in said[1], said
    assert "3 errors" in run.stdout.splitlines()[-1], out
    # Each error is its heading, then one line: the fix.
    errors = run.stdout.split(" ERRORS ")[1].split(" short test summary info ")[0]
    lines = [line for line in errors.splitlines() if line and line[0] not in "_="]
    assert len(lines) == 3, errors
    for name, line in zip(("nginx", "chromium"), lines, strict=False):
        assert line == missing_program_message(name)
        assert f"install the Debian package {name} (apt-get install -y {name})" in line
    assert lines[2].startswith(f"PostgreSQL at {env['QM_TEST_POSTGRES']} is not reachable (")
    assert f"port {closed} failed: Connection refused" in lines[2]
    assert "start that server or point QM_TEST_POSTGRES at one that runs" in lines[2]


def test_postgresql_not_installed_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("QM_TEST_POSTGRES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    message = postgres_unreachable_message("connection refused\n\tIs the server running?")
    assert "\n" not in message and "connection refused Is the server running?" in message
    assert "install the Debian package postgresql (apt-get install -y postgresql)" in message


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended while we looked
        if text in args:
            found.append(f"{cmdline.parent.name}: {args}")
    return found


def _open_files_under(folder: Path) -> list[str]:
    links = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return [link for link in links if link.startswith(str(folder))]


@pytest.mark.e2e
def test_a_site_that_fails_its_health_wait_leaves_no_process_behind(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="timed out waiting for site API"):
        start_site(tmp_path, timeout=0.01)  # no site answers within 10 ms of its start
    assert _processes_mentioning(str(tmp_path / "site")) == []
    assert _open_files_under(tmp_path) == []


@pytest.mark.e2e
def test_a_running_site_holds_no_log_file_open_in_the_test(tmp_path: Path) -> None:
    site = start_site(tmp_path)
    try:
        assert _processes_mentioning(str(tmp_path / "site"))  # it runs ...
        assert _open_files_under(tmp_path) == []  # ... and only it holds its log
    finally:
        site.stop()
    assert _processes_mentioning(str(tmp_path / "site")) == []
