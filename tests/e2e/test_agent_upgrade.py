"""The agent upgrades itself through a deployment, and a broken build rolls back.

Three builds of quartermaster-client are made here from the repository's sources: A (the
version as it is), B (the same with a higher version) and a broken one (its agent module
fails to import). A is installed into an empty virtual environment and registered with a
real site. Deploying the broken build fails with its reason at the site and leaves A
running; deploying B upgrades the running service, which restarts itself and reports B in
its inventory (`qm client list`).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import quartermaster
from tests.conftest import ON_SQLITE
from tests.e2e.processes import SiteServer, wait_until
from tests.e2e.scenario import create_package, deploy_to, messages

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
A = quartermaster.__version__


def build(folder: Path, version: str, broken: bool = False) -> Path:
    """A wheel of packages/client from a copy of the sources, with `version`."""
    shutil.copytree(ROOT / "src" / "quartermaster", folder / "src" / "quartermaster",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    init = folder / "src" / "quartermaster" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    if broken:
        agent = folder / "src" / "quartermaster" / "client" / "agent.py"
        agent.write_text(agent.read_text() + '\nraise ImportError("this build is broken")\n')
    project = folder / "packages" / "client"
    project.mkdir(parents=True)
    text = (ROOT / "packages" / "client" / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace(f'version = "{A}"', f'version = "{version}"')
    )
    out = folder / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(out),
            str(project),
        ],
        check=True,
        timeout=600,
    )
    [wheel] = out.glob("*.whl")
    return wheel


def upgrade_package(site: SiteServer, folder: Path, wheel: Path, name: str) -> str:
    folder.mkdir()
    shutil.copy(wheel, folder / wheel.name)
    (folder / "upgrade.sh").write_text(
        f'exec "$QM_AGENT_PYTHON" -m quartermaster.client upgrade {wheel.name}\n'
    )
    return create_package(site, folder, name=name, command="sh upgrade.sh")


def agent_version(site: SiteServer, client_id: str) -> str:
    clients = site.qm("client", "list", "--json").json()["clients"]
    return str(next(c["agent_version"] for c in clients if c["client_id"] == client_id))


@ON_SQLITE
def test_the_agent_upgrades_through_a_deployment_and_a_broken_build_rolls_back(
    site: SiteServer, tmp_path: Path
) -> None:
    b_version = A + ".1"
    wheel_a = build(tmp_path / "a", A)
    wheel_b = build(tmp_path / "b", b_version)
    wheel_broken = build(tmp_path / "broken", A + ".2", broken=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel_a)], check=True, timeout=600
    )
    python, home = str(venv / "bin" / "python"), tmp_path / "client"

    def qm_client(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "qm-client"), *args], capture_output=True, text=True
        )

    client_id = qm_client("register", "--home", str(home), "--site", site.url).stdout.strip()
    assert agent_version(site, client_id) == A

    # The broken build: installed, fails its check, A is put back; the reason is at the site.
    broken_id = upgrade_package(site, tmp_path / "broken-pkg", wheel_broken, "AgentBroken")
    deployment = deploy_to(site, broken_id, [client_id], "Lab")
    assert qm_client("run", "--home", str(home), "--once").returncode == 0
    [failed] = messages(site, deployment=deployment, message_id="10006")
    assert "this build is broken" in failed["output_tail"]
    assert f"rolled back to {A}" in failed["output_tail"]
    still = subprocess.run(
        [python, "-m", "quartermaster.client", "check"], capture_output=True, text=True
    )
    assert still.stdout.strip() == f"quartermaster-client {A}"
    assert not (home / "restart-requested").exists()

    # B, through the running service: it upgrades, restarts itself, reports B.
    b_id = upgrade_package(site, tmp_path / "b-pkg", wheel_b, "AgentB")
    deployment_b = site.qm(
        "deploy", "create", "--package", b_id, "--program", "Install", "--collection", "Lab"
    ).stdout.strip()
    with open(tmp_path / "service.log", "ab") as log:
        service = subprocess.Popen(
            [python, "-m", "quartermaster.client", "run", "--home", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: agent_version(site, client_id) == b_version, "B in the inventory")
        assert service.poll() is None  # the same process, re-executed
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=120)
    ids = [m["message_id"] for m in messages(site, deployment=deployment_b)]
    assert ids[-1] == 10008
    now = subprocess.run(
        [python, "-m", "quartermaster.client", "check"], capture_output=True, text=True
    )
    assert now.stdout.strip() == f"quartermaster-client {b_version}"
    assert "restarting to run the upgraded agent" in (home / "logs" / "service.log").read_text()
