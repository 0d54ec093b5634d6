"""`qm client` commands: registration, one run, status, and the service stopping on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from quartermaster.cli.client_commands import app
from quartermaster.client.home import ClientHome
from quartermaster.client.timestamps import format_utc
from quartermaster.core.signing import SigningKey

from .conftest import ClientWorld
from .servers import CannedServer, StoreServer

runner = CliRunner()


def registrar(client_id: str, key: SigningKey) -> CannedServer:
    answer = {
        "client_id": client_id,
        "client_secret": "qmc_new",
        "site_code": "QM1",
        "signing_keys": [key.public.to_dict()],
        "poll_interval": 900,
    }

    def respond(method: str, path: str, _: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if (method, path) == ("POST", "/api/client/v1/register"):
            return 201, {}, answer
        return 404, {}, {"error": {"code": "not_found", "message": path, "hint": ""}}

    return CannedServer(respond)


def test_register_prints_only_the_client_id_and_keeps_the_secret_private(tmp_path: Path) -> None:
    client_id, key = str(uuid.uuid4()), SigningKey.generate()
    with registrar(client_id, key) as site:
        result = runner.invoke(
            app,
            [
                "register",
                "--home",
                str(tmp_path / "home"),
                "--site",
                site.url,
                "--hostname",
                "lab-07",
            ],
        )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{client_id}\n"
    home = ClientHome(tmp_path / "home")
    assert stat.S_IMODE(home.secret_path.stat().st_mode) == 0o600
    assert home.read_secret() == "qmc_new"
    config = home.load_config()
    assert (config.site_url, config.poll_interval) == (site.url, 900)
    assert list(config.trusted_keys()) == [key.keyid]
    facts = site.requests[0][3]
    assert facts["hostname"] == "lab-07" and facts["ip_addresses"] == ["127.0.0.1"]
    assert isinstance(facts["properties"]["free_disk_mb"], int)
    assert facts["os"] and facts["architecture"] and facts["agent_version"]


def test_registering_a_registered_home_needs_force(tmp_path: Path) -> None:
    key = SigningKey.generate()
    home = str(tmp_path / "home")
    with registrar(str(uuid.uuid4()), key) as site:
        runner.invoke(app, ["register", "--home", home, "--site", site.url])
        again = runner.invoke(app, ["register", "--home", home, "--site", site.url])
        assert again.exit_code == 1
        assert "already holds a registered client" in again.stderr
        assert "--force" in again.stderr
        forced = runner.invoke(app, ["register", "--home", home, "--site", site.url, "--force"])
    assert forced.exit_code == 0
    assert len(site.requests) == 2


def test_run_once_against_an_unreachable_site_fails_with_a_hint(world: ClientWorld) -> None:
    result = runner.invoke(app, ["run", "--home", str(world.home.root), "--once"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the site")
    assert "hint:" in result.stderr
    assert result.stdout == ""


def test_run_on_an_unregistered_home_says_how_to_register(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--home", str(tmp_path), "--once"])
    assert result.exit_code == 1
    assert "qm client register" in result.stderr


def test_status_shows_deployments_results_and_cache(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, command="exit 1")
    world.run()
    result = runner.invoke(app, ["status", "--home", str(world.home.root), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    [deployment] = report["deployments"]
    assert (deployment["deployment_id"], deployment["result"], deployment["exit_code"]) == (
        "QM120000",
        "failed",
        1,
    )
    assert report["cache"]["blobs"] == 1 and report["cache"]["used_bytes"] > 0
    assert report["policy"]["serial"] == 1
    # if-failed: a failed attempt is offered again only on request (or a new deadline)
    assert deployment["next"]["action"] == "available"
    text = runner.invoke(app, ["status", "--home", str(world.home.root)])
    assert "QM120000" in text.stdout and "failed (exit code 1)" in text.stdout
    assert "next: available" in text.stdout


def test_the_service_stops_cleanly_on_sigterm(world: ClientWorld) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the site is down
        sock.bind(("127.0.0.1", 0))
        config = world.home.load_config()
        config.site_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    world.home.save_config(config)
    code = "import sys; from quartermaster.cli.client_commands import app; app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--home", str(world.home.root), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    log = world.home.logs / "policyagent.log"
    try:
        for _ in range(600):  # wait for the first run to finish; bounded
            if log.exists() and "next run in" in log.read_text():
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert out == b""
    logged = [json.loads(line) for line in err.decode().splitlines()]  # JSON lines only
    messages = [entry["message"] for entry in logged]
    assert messages[0] == "client agent service started"
    assert messages[-1] == "client agent service stopped"
    failed = [e for e in logged if e["message"].startswith("agent run failed")]
    assert (
        failed
        and failed[0]["level"] == "warning"
        and "cannot reach the site" in failed[0]["message"]
    )
    text = log.read_text()
    assert "agent run failed: cannot reach the site" in text
    assert text.splitlines()[-1].startswith("<![LOG[service stopped]LOG]!>")


def test_register_refuses_a_site_url_that_is_not_http(tmp_path: Path) -> None:
    result = runner.invoke(app, ["register", "--home", str(tmp_path), "--site", "site:8441"])
    assert result.exit_code == 1
    assert "site URL 'site:8441' is not valid" in result.stderr
    assert not (tmp_path / "client.json").exists()


def test_commands_from_other_modules_join_the_client_dp_and_site_groups() -> None:
    from quartermaster.cli.main import app as qm

    expected = {
        "client": ["register", "run", "list", "approve", "block", "rekey"],
        "dp": ["serve", "add", "list", "content", "validate", "retire", "reenroll"],
        "site": ["init", "serve", "settings", "status", "rotate-key", "retire-key", "keys"],
    }
    for group, commands in expected.items():
        result = runner.invoke(qm, [group, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
        assert set(commands) <= listed, (group, sorted(listed))


def test_status_shows_the_scheduled_moment_itself(world: ClientWorld, dp: StoreServer) -> None:
    """The "at" of `next: available` is the deadline, not the minute before it when the agent
    wakes."""
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    world.deploy(dp, deadline=deadline)
    world.run()  # fetches the policy; the deployment is only offered
    report = json.loads(
        runner.invoke(app, ["status", "--home", str(world.home.root), "--json"]).stdout
    )
    [deployment] = report["deployments"]
    assert deployment["next"]["action"] == "available"
    assert deployment["next"]["at"] == deployment["deadline"] == format_utc(deadline)
    text = runner.invoke(app, ["status", "--home", str(world.home.root)]).stdout
    assert f"until the deadline) at {format_utc(deadline)}" in text


def test_register_to_an_unreachable_site_promises_nothing(tmp_path: Path) -> None:
    """No client.json exists yet and nothing retries a registration: the hint says so."""
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = runner.invoke(app, ["register", "--home", str(tmp_path / "home"), "--site", url])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the site"), result.stderr
    hint = result.stderr.split("hint: ", 1)[1]
    assert "client.json" not in hint and "again at its next run" not in hint, hint
    assert "check the URL given with --site" in hint
    assert "nothing was registered: run the command again when the site answers" in hint
    assert not (tmp_path / "home" / "client.json").exists()


def test_the_service_entry_point_refuses_a_home_that_is_not_registered(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quartermaster.client", "run", "--home", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "is not a registered client home" in done.stderr
    assert "qm client register" in done.stderr
    assert not (tmp_path / "none").exists()
