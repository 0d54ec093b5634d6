"""The agent as a systemd service: the unit it writes, and SIGTERM in the middle of work.

The unit is checked by systemd's own `systemd-analyze verify`. The service is started the
way the unit starts it (`python -m quartermaster.client run --home H`) against a real site
and stopped with SIGTERM while it downloads and while a program runs: no status message may
be lost, no half-written file may stay, and the interrupted work finishes at the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ON_SQLITE
from tests.e2e.cutting_proxy import CuttingProxy
from tests.e2e.processes import SiteServer, run_qm, start_dp, wait_until
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    messages,
    register_client,
    run_client,
    wait_installed,
)
from tests.required_programs import program

pytestmark = pytest.mark.e2e


def verify(unit: Path) -> str:
    """What `systemd-analyze verify` says about a unit: "" when it accepts it silently."""
    done = subprocess.run(
        [program("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True
    )
    said = (done.stdout + done.stderr).strip()
    return f"exit {done.returncode}: {said}" if done.returncode or said else ""


@ON_SQLITE
def test_install_service_writes_a_unit_that_systemd_accepts(
    site: SiteServer, tmp_path: Path
) -> None:
    units, home = tmp_path / "units", tmp_path / "qm-client"
    units.mkdir()
    done = run_qm(
        "client", "install-service", "--home", str(home), "--site", site.url,
        "--unit-dir", str(units),
    )  # fmt: skip
    unit = units / "qm-client.service"
    assert f"wrote {unit}" in done.stdout
    assert (home / "client.json").is_file()  # registered on the way
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m quartermaster.client run --home {home}" in text
    assert "KillMode=mixed" in text and "User=root" in text
    assert verify(unit) == ""
    broken = tmp_path / "broken.service"  # the check is not a rubber stamp
    broken.write_text(text.replace("KillMode=mixed", "KillMode=mixed\nFrobnicate=yes"))
    assert "Frobnicate" in verify(broken)

    # Again with another site: refused, nothing changed.
    again = run_qm(
        "client", "install-service", "--home", str(home), "--site", "http://127.0.0.1:9",
        "--unit-dir", str(units), check=False,
    )  # fmt: skip
    assert again.code == 1 and "is registered with" in again.stderr
    assert unit.read_text() == text

    # As another account: the home is handed to it and the stricter sandbox applies.
    run_qm(
        "client", "install-service", "--home", str(home), "--site", site.url,
        "--unit-dir", str(units), "--user", "daemon",
    )  # fmt: skip
    strict = unit.read_text()
    assert "User=daemon" in strict and "ProtectSystem=strict" in strict
    assert (home / "secret").stat().st_uid == 1 and (home / "secret").stat().st_mode & 0o077 == 0
    assert verify(unit) == ""
    unknown = run_qm(
        "client", "install-service", "--home", str(home), "--site", site.url,
        "--unit-dir", str(units), "--user", "no-such-account", check=False,
    )  # fmt: skip
    assert unknown.code == 1 and "no account 'no-such-account'" in unknown.stderr

    # Removing takes a unit this command wrote; a foreign one is left alone.
    assert (
        f"removed {unit}" in run_qm("client", "uninstall-service", "--unit-dir", str(units)).stdout
    )
    assert not unit.exists()
    (units / "qm-client.service").write_text("[Service]\nExecStart=/bin/true\n")
    foreign = run_qm("client", "uninstall-service", "--unit-dir", str(units), check=False)
    assert foreign.code == 1 and "not written by" in foreign.stderr


def start_service(home: Path, log: Path) -> subprocess.Popen[bytes]:
    """The agent as the unit starts it."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "quartermaster.client", "run", "--home", str(home)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_with_sigterm(service: subprocess.Popen[bytes]) -> int:
    service.send_signal(signal.SIGTERM)
    return service.wait(timeout=120)


def assert_each_message_once(site: SiteServer, deployment_id: str) -> list[int]:
    rows = messages(site, deployment=deployment_id)
    uids = Counter(json.dumps([r["time"], r["message_id"], r["insertion_strings"]]) for r in rows)
    assert max(uids.values()) == 1, uids
    return [r["message_id"] for r in rows]


def gone(pid: int) -> bool:
    """The process has ended (a zombie not yet reaped by init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def no_half_written_files(home: Path) -> list[str]:
    """Files a crash could have left half-written outside the resumable .part files."""
    found = [p for p in home.rglob("*") if p.name.endswith((".tmp", ".building"))]
    found += [p for p in home.rglob(".*") if p.is_file() and p.name != ".reserve"]  # by design
    return [str(p) for p in found]


@ON_SQLITE
def test_sigterm_during_a_program_stops_it_reports_it_and_it_runs_again(
    site: SiteServer, tmp_path: Path
) -> None:
    source, flag, pid_file = tmp_path / "src", tmp_path / "ran-once", tmp_path / "program.pid"
    source.mkdir()
    (source / "install.sh").write_text(
        f"echo $$ > '{pid_file}'\n"
        f"if [ -f '{flag}' ]; then echo second run; exit 0; fi\n"
        f"touch '{flag}'; echo first run, waiting; sleep 300\n"
    )
    home = tmp_path / "client"
    client_id = register_client(site, home)
    package_id = create_package(site, source)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")
    service = start_service(home, tmp_path / "service.log")
    try:
        wait_until(flag.exists, "the program to start")
        wait_until(lambda: pid_file.read_text().strip(), "the program's pid")
        program_pid = int(pid_file.read_text())
        assert stop_with_sigterm(service) == 0
    finally:
        if service.poll() is None:
            service.kill()
    wait_until(lambda: gone(program_pid), "the program to be stopped with the agent")
    assert no_half_written_files(home) == []
    state = json.loads((home / "state.json").read_text())["deployments"][deployment_id]
    assert state["result"] == "retrying" and state["running"] is None
    assert "interrupted" in state["reason"]
    ids = assert_each_message_once(site, deployment_id)
    assert ids[-2:] == [10005, 10072]
    [interrupted] = messages(site, deployment=deployment_id, message_id="10072")
    assert interrupted["output_tail"] == "first run, waiting\n"
    assert "SIGTERM" in interrupted["text"]

    run_client(home)  # the next start runs it again, per the rerun rule (if-failed)
    ids = assert_each_message_once(site, deployment_id)
    assert ids[-2:] == [10005, 10008] and ids.count(10072) == 1
    assert ids.index(10072) < len(ids) - 2
    assert list((home / "spool").glob("*.json")) == []


@ON_SQLITE
def test_a_killed_agent_finds_its_interrupted_program_at_the_next_start(
    site: SiteServer, tmp_path: Path
) -> None:
    source, flag, pid_file = tmp_path / "src", tmp_path / "ran-once", tmp_path / "program.pid"
    source.mkdir()
    (source / "install.sh").write_text(
        f"echo $$ > '{pid_file}'\nif [ -f '{flag}' ]; then exit 0; fi\ntouch '{flag}'; sleep 300\n"
    )
    home = tmp_path / "client"
    client_id = register_client(site, home)
    package_id = create_package(site, source)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab", "Install", "--rerun", "never")
    service = start_service(home, tmp_path / "service.log")
    try:
        wait_until(flag.exists, "the program to start")
        wait_until(lambda: pid_file.read_text().strip(), "the program's pid")
        service.kill()  # no chance to clean up: power loss, OOM killer
        service.wait(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
    os.killpg(os.getpgid(int(pid_file.read_text())), signal.SIGKILL)  # the orphaned program
    run_client(home)
    ids = assert_each_message_once(site, deployment_id)
    assert ids[-2:] == [10005, 10073]  # rerun never: reported, not run again
    [final] = messages(site, deployment=deployment_id, message_id="10073")
    assert "agent killed" in final["text"] and "never" in final["text"]


@ON_SQLITE
def test_sigterm_during_a_download_keeps_the_part_and_the_next_run_resumes(
    site_whole_files: SiteServer, tmp_path: Path
) -> None:
    site = site_whole_files  # files stay whole: this is about one large blob's .part
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    (source / "install.sh").write_text("cmp -s big.bin big.bin\n")
    home = tmp_path / "client"
    client_id = register_client(site, home)
    proxy = CuttingProxy(0, slow_after=4 * 1024 * 1024, slow_rate=512 * 1024)
    proxy_port = proxy.start()
    dp = start_dp(
        site, tmp_path, "branch", boundaries=("127.0.0.0/8",),
        public_url=f"http://127.0.0.1:{proxy_port}",
    )  # fmt: skip
    proxy.target_port = dp.port
    try:
        package_id = create_package(site, source)
        wait_installed(site, package_id, "branch")
        deployment_id = deploy_to(site, package_id, [client_id], "Lab")
        service = start_service(home, tmp_path / "service.log")
        try:
            wait_until(
                lambda: sum(proxy.downstream) > 5 * 1024 * 1024, "the download to be under way"
            )
            assert stop_with_sigterm(service) == 0
        finally:
            if service.poll() is None:
                service.kill()
        parts = list((home / "cache").rglob("*.part"))
        assert len(parts) == 1 and 0 < parts[0].stat().st_size < 24 * 1024 * 1024
        assert not parts[0].with_suffix("").exists()  # no blob under its final name
        assert no_half_written_files(home) == []
        assert not (home / "work" / deployment_id).exists()
        ids = assert_each_message_once(site, deployment_id)
        assert ids[-1] == 10035 and 10051 not in ids and 10050 not in ids
        kept = parts[0].stat().st_size

        proxy.slow_after = None
        run_client(home)
        ids = assert_each_message_once(site, deployment_id)
        assert ids[-1] == 10008
        [verified] = messages(site, deployment=deployment_id, message_id="10036")
        downloaded = int(verified["insertion_strings"][5])
        # the rest of big.bin, plus install.sh unless the first run had it (a pack of the
        # small blobs goes first)
        rest = 24 * 1024 * 1024 - kept
        assert downloaded in (rest, rest + len(b"cmp -s big.bin big.bin\n")), (downloaded, kept)
    finally:
        dp.stop()
        proxy.stop()
