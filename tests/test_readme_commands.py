"""The README's two commands are what a fresh machine needs: the quick start sets up and
starts a site from a clean clone, and the test command is scripts/test, which CI runs."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port_pair, start_site, wait_until
from tests.required_programs import program

ROOT = Path(__file__).resolve().parents[1]


def readme_command(readme: str, heading: str) -> str:
    """The one-line shell block that follows the bold `heading` in the README."""
    found = re.search(rf"\*\*{re.escape(heading)}\*\*.*?```sh\n(.*?)\n```", readme, re.S)
    assert found, f"the README has no sh block after **{heading}**"
    command = found.group(1).strip()
    assert "\n" not in command, f"the block after **{heading}** is not one command"
    return command


def check_the_test_command(checkout: Path) -> None:
    """README says scripts/test; .ci/run runs it and nothing else runs pytest there."""
    readme = (checkout / "README.md").read_text()
    assert readme_command(readme, "Run the tests") == "scripts/test"
    script = checkout / "scripts" / "test"
    assert script.is_file() and os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    lines = [line.strip() for line in (checkout / ".ci" / "run").read_text().splitlines()]
    code = [line for line in lines if line and not line.startswith("#")]
    assert any(line.startswith("scripts/test -m ") for line in code), code
    assert not [line for line in code if "pytest" in line or "python" in line], code


def test_readme_and_ci_run_the_tests_with_scripts_test() -> None:
    check_the_test_command(ROOT)


@pytest.mark.e2e
def test_the_quick_start_sets_up_and_serves_a_site_in_a_fresh_clone(tmp_path: Path) -> None:
    """`git clone`, then the quick start as written: venv, install, init, serve (on free
    ports instead of 8440/8441, briefly), and the test command is there for the next step."""
    clone = tmp_path / "clone"
    subprocess.run([program("git"), "clone", "-q", str(ROOT), str(clone)], check=True)
    check_the_test_command(clone)
    steps = readme_command((clone / "README.md").read_text(), "Set up and start the site server")
    venv, install, init, serve = (shlex.split(step) for step in steps.split(" && "))
    assert venv == ["python3", "-m", "venv", ".venv"]
    assert install == [".venv/bin/pip", "install", "-e", "."]
    assert init == [".venv/bin/qm", "site", "init", "--home", "./site"]
    assert serve == [".venv/bin/qm", "site", "serve", "--home", "./site"]

    for step in (venv, install):
        done = subprocess.run(step, cwd=clone, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{shlex.join(step)}:\n{done.stderr[-3000:]}"
    port = free_port_pair()
    subprocess.run([*init, "--listen", f"127.0.0.1:{port}"], cwd=clone, check=True)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(serve, cwd=clone, stdout=out, stderr=subprocess.STDOUT)
    try:
        for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"):
            wait_until(lambda u=url: _healthy(server, u, log), f"{url}/healthz")
        token = (clone / "site" / "admin.token").read_text().strip()
        packages = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/packages",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert packages.status_code == 200, packages.text  # the admin token in ./site works
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert code == 0, log.read_text()[-3000:]


def _healthy(server: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert server.poll() is None, log.read_text()[-3000:]
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def readme_tour(readme: str, site_url: str) -> str:
    """Every sh block of the README's tour, in order, as one script for this test's site."""
    tour = readme.split("\n## A tour\n")[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", tour, re.S)
    assert len(blocks) >= 3, tour
    script = "\n".join(blocks)
    assert "QM_SITE=http://127.0.0.1:8440 " in script
    return script.replace("QM_SITE=http://127.0.0.1:8440 ", f"QM_SITE={site_url} ")


@pytest.mark.e2e
def test_the_readme_tour_runs_twice_in_a_row(tmp_path: Path) -> None:
    """The tour's commands as written, from the folder of the quick start (./site, ./.venv),
    twice against one site: the second run makes its own package, client, collection and
    deployments instead of failing on the first run's."""
    site = start_site(tmp_path)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "tmp").mkdir()
    script = readme_tour((ROOT / "README.md").read_text(), site.url)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    env.pop("QM_SITE", None)
    env.pop("QM_TOKEN", None)
    outputs = []
    try:
        for _ in range(2):
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-xc", script],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert run.returncode == 0, f"{run.stderr[-4000:]}\n{run.stdout[-4000:]}"
            outputs.append(run.stdout)
        kept = site_messages(site.url, site.token, "QM120000")
    finally:
        site.stop()
    first, second = outputs
    # The status example lists exactly the messages the first deployment has.
    said = next(line for line in script.splitlines() if line.startswith("qm status messages"))
    listed = {int(n) for n in re.findall(r"\b1\d{4}\b", said.split("#", 1)[1])}
    assert listed == kept, (said, kept)
    shown = next(line for line in script.splitlines() if line.startswith("qm deploy status $DEP "))
    example = shown.split("# ", 1)[1].rstrip(" …")  # the counts line as the README shows it
    for out in outputs:
        assert "installed by Quartermaster\n" in out
        counts = next(line for line in out.splitlines() if line.startswith("targeted 1: "))
        assert counts.startswith(example), (example, counts)
        for message in ("10002", "10005", "10008", '"compliant": 1'):
            assert message in out
        assert "windows: none" in out  # the tour ends with its window removed
    assert first.startswith("QM100001 Hello  source: "), first
    assert second.startswith("QM100002 Hello  source: "), second  # its own package


def site_messages(url: str, token: str, deployment_id: str) -> set[int]:
    answer = httpx.get(
        f"{url}/api/v1/status-messages",
        params={"deployment": deployment_id, "limit": 1000},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return {m["message_id"] for m in answer.json()["messages"]}
