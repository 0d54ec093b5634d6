"""Run a program: the platform shell, its own process group, a hard time limit, output to a log.

The program runs in its own session (POSIX) or process group (Windows) so that on timeout
the whole tree it started is stopped, not just the shell. Its stdout and stderr go to a log
file under logs/programs/, never to the agent's own output; stdin is empty so a program that
waits for input fails fast instead of hanging until its time limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from quartermaster.client.local_state import Result
from quartermaster.client.program_output import masked_command, read_tail
from quartermaster.client.run_as import Account, account_for, private_copy
from quartermaster.client.work_layout import remove_tree
from quartermaster.core.errors import InvalidInput
from quartermaster.core.manifest import check_relpath
from quartermaster.core.program import Outcome, ProgramSpec

TERMINATE_GRACE = 5.0  # seconds between the polite stop and the kill
PROGRAM_UMASK = 0o022


@dataclass(frozen=True)
class ProgramRun:
    exit_code: int | None = None
    timed_out: bool = False
    start_error: str = ""  # set when the program could not be started
    output: str = ""  # the last 64 KiB of its stdout and stderr, secrets masked
    interrupted: bool = False  # stopped because the agent was asked to stop


@dataclass(frozen=True)
class ExitReport:
    message_id: int
    extra: tuple[str, ...]  # insertion strings after deployment, package and program
    result: str


def exit_report(spec: ProgramSpec, exit_code: int) -> ExitReport:
    """The status message and result of an exit code that ends a run (a retry aside).

    A retryable code with no retries left is a failure. On POSIX an exit status has 8 bits,
    so 3010 arrives as 194 and 1641 as 105; ProgramSpec.meaning maps them back.
    """
    outcome = spec.classify(exit_code)
    code = spec.exit_code_text(exit_code)  # 3010, with why 194 was seen, not "194"
    if outcome is Outcome.SUCCESS:
        return ExitReport(10008, (code,), Result.SUCCEEDED)
    if outcome is Outcome.SUCCESS_REBOOT:
        return ExitReport(10021, (code, spec.reboot_kind(exit_code)), Result.REBOOT_REQUIRED)
    return ExitReport(10006, (code,), Result.FAILED)


STOP_CHECK = 0.5  # seconds between looks at the stop request while a program runs


def run_program(
    spec: ProgramSpec,
    work_dir: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ProgramRun:
    """Run `spec.command` in `work_dir` (or its working_dir) and wait at most max_runtime,
    as the account its run context names (client/run_as.py). When `should_stop` turns true
    (the service got SIGTERM) the program's process tree is stopped and the run is
    `interrupted`."""
    try:
        account = account_for(spec.run_context)
        if account is not None:
            work_dir = private_copy(work_dir, account)
        cwd = working_directory(work_dir, spec.working_dir)
    except InvalidInput as exc:
        return ProgramRun(start_error=exc.message)
    try:
        return _run(spec, cwd, log_path, extra_env or {}, account, should_stop)
    finally:
        if account is not None:
            remove_tree(work_dir.parent)


def _run(
    spec: ProgramSpec,
    cwd: Path,
    log_path: Path,
    extra_env: dict[str, str],
    account: Account | None,
    should_stop: Callable[[], bool],
) -> ProgramRun:
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_path, "ab", opener=_private_opener) as log:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        log.write(f"--- {stamp} {masked_command(spec.command)} (in {cwd})\n".encode())
        log.flush()
        start = log.tell()
        try:
            env = account.environment(extra_env) if account else {**os.environ, **extra_env}
            process = _start(spec.command, cwd, log, env, account)
        except OSError as exc:
            return ProgramRun(start_error=f"{exc.strerror or exc} ({masked_command(spec.command)})")
        code = _wait(process, spec.max_runtime, should_stop)
        if code is None or code == _STOPPED:
            stop_process_tree(process)
            log.flush()
            tail = read_tail(log_path, start, spec.command)
            if code == _STOPPED:
                log.write(b"--- stopped: the agent was asked to stop\n")
                return ProgramRun(interrupted=True, output=tail)
            log.write(f"--- stopped after {spec.max_runtime} seconds\n".encode())
            return ProgramRun(timed_out=True, output=tail)
    return ProgramRun(exit_code=code, output=read_tail(log_path, start, spec.command))


_STOPPED = -(2**63)  # _wait's answer when a stop was requested


def _wait(
    process: subprocess.Popen[bytes], max_runtime: float, should_stop: Callable[[], bool]
) -> int | None:
    """The exit code; None at max_runtime; _STOPPED when `should_stop` turned true."""
    deadline = time.monotonic() + max_runtime
    while True:
        if should_stop():
            return _STOPPED
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return process.wait(timeout=min(left, STOP_CHECK))
        except subprocess.TimeoutExpired:
            continue


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def working_directory(work_dir: Path, relative: str) -> Path:
    if not relative:
        return work_dir
    check_relpath(relative.replace("\\", "/"))
    folder = work_dir.joinpath(*relative.replace("\\", "/").split("/"))
    if not folder.is_dir():
        raise InvalidInput(
            f"working directory {relative!r} does not exist in the package",
            "set the program's working directory to a folder of the package",
        )
    return folder


def _start(
    command: str, cwd: Path, log: IO[bytes], env: dict[str, str], account: Account | None = None
) -> subprocess.Popen[bytes]:
    if sys.platform == "win32":
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        return subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            creationflags=flags,
        )
    return subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        umask=PROGRAM_UMASK,  # the agent's own files are private; what a program installs is not
        # switch to the account in the child, before it runs anything (client/run_as.py)
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=list(account.groups) if account else None,
    )


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    """Ask the program's whole process group to stop, then kill what is left."""
    if sys.platform == "win32":
        subprocess.run(
            ["taskkill", "/T", "/F", "/PID", str(process.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        process.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=TERMINATE_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()  # the shell itself, should its group be gone already
    process.wait()
