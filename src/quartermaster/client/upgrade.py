"""Self-upgrade: the agent installs a new build of itself from a deployment, or rolls back.

An administrator packages a wheel of quartermaster-client with the program

    "$QM_AGENT_PYTHON" -m quartermaster.client upgrade quartermaster_client-X.Y.Z-py3-none-any.whl

and deploys it like any package. The program runs inside the agent's own environment
(QM_AGENT_PYTHON is the interpreter the agent runs on): it keeps a copy of the installed
agent, installs the wheel with pip, and starts the new build once (`check`: every agent
module imports and reports its version). If pip or the check fails, the copy is put back,
the program exits 1 and says why (10006 carries that output to the site): the agent that
runs is the one that ran before. If it succeeds, it asks the agent to restart
(RESTART_MARKER in the client home); the service re-executes itself after the current run,
and its next inventory report carries the new version (`qm client list`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import quartermaster
from quartermaster.core.errors import QMError

RESTART_MARKER = "restart-requested"
CHECK_TIMEOUT = 120


class UpgradeFailed(QMError):
    code = "upgrade_failed"


def installed_files() -> tuple[Path, list[Path]]:
    """The site-packages folder holding quartermaster, and the quartermaster folder and
    dist-info folders that make up the installed agent."""
    package = Path(quartermaster.__file__).resolve().parent
    site_dir = package.parent
    infos = sorted(site_dir.glob("quartermaster_client-*.dist-info"))
    infos += sorted(site_dir.glob("quartermaster-*.dist-info"))
    return site_dir, [package, *infos]


def check_build(python: str = sys.executable) -> tuple[bool, str]:
    """Start the installed build once in a new process: (works, what it said)."""
    try:
        done = subprocess.run(
            [python, "-m", "quartermaster.client", "check"],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return False, f"the new build did not answer within {CHECK_TIMEOUT} seconds"
    said = (done.stdout + done.stderr).strip()
    return done.returncode == 0, said


def upgrade(wheel: Path, home: Path | None) -> tuple[str, str]:
    """Install `wheel` over the running agent; (version before, version after). Raises
    UpgradeFailed after putting the previous build back."""
    if not wheel.is_file():
        raise UpgradeFailed(f"{wheel} does not exist", "ship the wheel in the package")
    before = quartermaster.__version__
    site_dir, parts = installed_files()
    backup = Path(tempfile.mkdtemp(prefix=".qm-agent-rollback-", dir=site_dir))
    try:
        for part in parts:
            shutil.copytree(part, backup / part.name, symlinks=True)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall",
             "--no-index", str(wheel)],
            capture_output=True,
            text=True,
        )  # fmt: skip
        works, said = check_build() if pip.returncode == 0 else (False, pip.stderr.strip())
        if not works:
            _restore(site_dir, backup)
            ok, after_rollback = check_build()
            state = f"rolled back to {before}" if ok else f"rollback to {before} did not start"
            raise UpgradeFailed(
                f"the new agent build failed ({said.splitlines()[-1] if said else 'no output'});"
                f" {state}",
                after_rollback if not ok else "",
            )
    finally:
        shutil.rmtree(backup, ignore_errors=True)
    after = said.split()[-1] if said else "?"
    if home is not None:
        (home / RESTART_MARKER).write_text(f"{before} {after}\n")
    return before, after


def _restore(site_dir: Path, backup: Path) -> None:
    """Remove what pip installed and put the copied build back."""
    for new in [
        site_dir / "quartermaster",
        *site_dir.glob("quartermaster_client-*.dist-info"),
        *site_dir.glob("quartermaster-*.dist-info"),
    ]:
        shutil.rmtree(new, ignore_errors=True)
    for part in backup.iterdir():
        shutil.copytree(part, site_dir / part.name, symlinks=True)


def agent_environment(home: Path) -> dict[str, str]:
    """What every program gets so that an upgrade program finds the agent."""
    return {"QM_AGENT_PYTHON": sys.executable, "QM_CLIENT_HOME": str(home)}


def restart_requested(home: Path) -> bool:
    return (home / RESTART_MARKER).exists()


def restart(home: Path) -> None:
    """Replace this process with the (new) agent service, same PID for systemd."""
    (home / RESTART_MARKER).unlink(missing_ok=True)
    from quartermaster.core.component_log import close_all

    close_all()
    os.execv(
        sys.executable,
        [sys.executable, "-m", "quartermaster.client", "run", "--home", str(home)],
    )
