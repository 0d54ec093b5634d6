"""Program execution with real subprocesses: exit codes, reboots, retries, time limits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from quartermaster.client.execution import ExitReport, exit_report, run_program
from quartermaster.client.local_state import Result
from quartermaster.core.program import ProgramSpec

from .conftest import ClientWorld, deployment_entry
from .servers import StoreServer, write_store


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def wait_until_gone(pid: int, limit: float = 20.0) -> bool:
    """Poll for the process to be gone; True once it is (bounded, no timing asserted)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_program_output_goes_to_its_log_not_the_agents_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs" / "p.log"
    run = run_program(ProgramSpec("P", "echo to-stdout; echo to-stderr >&2; exit 7"), tmp_path, log)
    assert run.exit_code == 7
    assert "to-stdout" in log.read_text() and "to-stderr" in log.read_text()
    captured = capfd.readouterr()
    assert "to-stdout" not in captured.out and "to-stderr" not in captured.err


def test_program_past_max_runtime_is_stopped_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    spec = ProgramSpec("P", f"sleep 600 & echo $! > {pid_file}; sleep 60", max_runtime=1)
    run = run_program(spec, tmp_path, tmp_path / "p.log")
    assert run.timed_out and run.exit_code is None
    assert wait_until_gone(int(pid_file.read_text()))


def test_missing_working_directory_means_the_program_could_not_start(tmp_path: Path) -> None:
    run = run_program(ProgramSpec("P", "exit 0", working_dir="setup"), tmp_path, tmp_path / "p.log")
    assert "does not exist" in run.start_error and run.exit_code is None


def test_program_runs_in_its_working_directory(tmp_path: Path) -> None:
    (tmp_path / "setup").mkdir()
    run = run_program(
        ProgramSpec("P", 'test "$(basename "$PWD")" = setup', working_dir="setup"),
        tmp_path,
        tmp_path / "p.log",
    )
    assert run.exit_code == 0


SEEN_AS_194 = (
    "(seen as exit status 194: a POSIX exit status keeps only the low 8 bits, "
    "and 3010 mod 256 = 194)"
)
SEEN_AS_105 = (
    "(seen as exit status 105: a POSIX exit status keeps only the low 8 bits, "
    "and 1641 mod 256 = 105)"
)


@pytest.mark.parametrize(
    ("code", "message_id", "extra", "result"),
    [
        (0, 10008, ["0"], Result.SUCCEEDED),
        (1, 10006, ["1"], Result.FAILED),
        (3010, 10021, ["3010", "soft"], Result.REBOOT_REQUIRED),
        (1641, 10021, ["1641", "hard"], Result.REBOOT_REQUIRED),
        (5, 10006, ["5"], Result.FAILED),  # retryable, but no retry left
        (194, 10021, [f"3010 {SEEN_AS_194}", "soft"], Result.REBOOT_REQUIRED),  # 3010 on POSIX
    ],
)
def test_exit_code_maps_to_its_message_and_result(
    code: int, message_id: int, extra: list[str], result: str
) -> None:
    spec = ProgramSpec("P", "x", retry_codes=(5,))
    assert exit_report(spec, code) == ExitReport(message_id, tuple(extra), result)


@pytest.mark.parametrize(
    ("command", "reboot_codes", "message_id", "extra", "result"),
    [
        ("exit 0", [3010, 1641], 10008, ["0"], Result.SUCCEEDED),
        ("exit 1", [3010, 1641], 10006, ["1"], Result.FAILED),
        ("exit 194", [194], 10021, ["194", "soft"], Result.REBOOT_REQUIRED),
        ("exit 3010", [3010, 1641], 10021, [f"3010 {SEEN_AS_194}", "soft"], Result.REBOOT_REQUIRED),
        ("exit 1641", [3010, 1641], 10021, [f"1641 {SEEN_AS_105}", "hard"], Result.REBOOT_REQUIRED),
    ],
)
def test_program_exit_is_reported_with_its_meaning(
    world: ClientWorld,
    dp: StoreServer,
    command: str,
    reboot_codes: list[int],
    message_id: int,
    extra: list[str],
    result: str,
) -> None:
    world.deploy(dp, command=command, reboot_codes=reboot_codes)
    world.run()
    [message] = world.site.messages(message_id)
    assert message["insertion_strings"] == ["QM120000", "QM100001", "Install", *extra]
    assert message["properties"]["exit_code"] == int(command.split()[1]) & 0xFF  # as seen
    assert world.site.messages(10005)[0]["insertion_strings"][3] == command
    assert world.state().result == result
    assert "exited with code" in world.log("execmgr")


def test_program_sees_its_package_files_with_their_modes(
    world: ClientWorld, dp: StoreServer
) -> None:
    package = world.package(
        {"bin/setup.sh": b"#!/bin/sh\nexit 0\n", "data.txt": b"data"}, modes={"bin/setup.sh": 0o755}
    )
    write_store(dp.root, package.blobs)
    world.serve_from(package, ("dp1", dp.url))
    command = world.keep_what_the_program_saw("./bin/setup.sh && test -f data.txt")
    world.publish(deployment_entry(package, command=command))
    world.run()
    assert world.site.ids()[-1] == 10008
    assert os.stat(world.seen() / "bin" / "setup.sh").st_mode & 0o777 == 0o755


def test_retryable_code_with_no_delay_retries_within_the_same_run(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker = tmp_path / "tried-once"
    world.deploy(
        dp,
        command=f"test -f {marker} && exit 0; touch {marker}; exit 5",
        retry_codes=[5],
        retry_delay=0,
    )
    world.run()
    [retry] = world.site.messages(10034)
    assert retry["insertion_strings"][3:] == ["5", "1", "3", "0"]
    assert world.site.ids()[-1] == 10008
    assert world.state().attempts == 2


def test_retry_with_a_delay_runs_at_a_later_run_once_due(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker = tmp_path / "tried-once"
    world.deploy(
        dp,
        command=f"test -f {marker} && exit 0; touch {marker}; exit 5",
        retry_codes=[5],
        retry_delay=60,
    )
    world.run()
    assert world.site.messages(10034)[0]["insertion_strings"][3:] == ["5", "1", "3", "60"]
    assert world.state().next_retry == "2026-11-25T12:01:00.000Z"
    world.clock.advance(59)
    world.run()
    assert len(world.site.messages(10005)) == 1  # not due yet: nothing started
    world.clock.advance(1)
    world.run()
    assert world.site.ids()[-1] == 10008
    assert world.state().result == Result.SUCCEEDED and world.state().next_retry is None


def test_retryable_code_fails_after_the_last_retry(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, command="exit 5", retry_codes=[5], retry_count=2, retry_delay=0)
    world.run()
    assert [m["insertion_strings"][4] for m in world.site.messages(10034)] == ["1", "2"]
    assert world.site.messages(10006)[0]["insertion_strings"][3] == "5"
    assert world.state().result == Result.FAILED


def test_program_past_max_runtime_is_reported_as_stopped(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, command="sleep 60", max_runtime=1)
    world.run()
    [stopped] = world.site.messages(10070)
    assert stopped["insertion_strings"][3] == "1"
    assert world.state().result == Result.TIMED_OUT


def test_program_that_cannot_start_is_reported(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, command="exit 0", working_dir="no-such-folder")
    world.run()
    [message] = world.site.messages(10007)
    assert "no-such-folder" in message["insertion_strings"][3]
    assert world.state().result == Result.NOT_STARTED


def test_program_logs_live_under_logs_programs(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, command="echo hello-from-program")
    world.run()
    [log] = (world.home.program_logs).glob("QM120000-v1-*.log")
    assert "hello-from-program" in log.read_text()
