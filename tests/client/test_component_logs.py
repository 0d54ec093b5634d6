"""Component logs in the CMTrace format, rotated to .lo_, and `qm client logs`.

The parser below is written from the format as Configuration Manager's log viewers read it,
not imported from the code under test, so a drift in the writer shows up here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from quartermaster.cli.client_commands import app
from quartermaster.client.home import ClientHome
from quartermaster.core.component_log import ComponentLog
from tests.e2e.processes import wait_until

from .conftest import ClientWorld
from .servers import StoreServer

runner = CliRunner()

CMTRACE = re.compile(
    r'<!\[LOG\[(.*?)\]LOG\]!><time="(\d{2}):(\d{2}):(\d{2})\.(\d{3})([+-]\d{1,4})" '
    r'date="(\d{2})-(\d{2})-(\d{4})" component="([^"]+)" context="" type="([123])" '
    r'thread="(\d+)" file="">\n',
    re.DOTALL,
)


@dataclass
class Record:
    message: str
    when: datetime
    component: str
    kind: int


def parse_cmtrace(text: str) -> list[Record]:
    """Every record; fails on any byte that is not part of a well-formed record."""
    records, position = [], 0
    for match in CMTRACE.finditer(text):
        assert match.start() == position, f"not CMTrace: {text[position : match.start()]!r}"
        hh, mm, ss, ms, _bias, month, day, year = match.group(2, 3, 4, 5, 6, 7, 8, 9)
        when = datetime(int(year), int(month), int(day), int(hh), int(mm), int(ss), int(ms) * 1000)
        records.append(Record(match[1], when, match[10], int(match[11])))
        position = match.end()
    assert position == len(text), f"trailing text not in CMTrace format: {text[position:]!r}"
    return records


def test_a_client_run_writes_every_log_in_the_cmtrace_format(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp)
    world.run()
    for component in ("policyagent", "cas", "execmgr"):
        records = parse_cmtrace((world.home.logs / f"{component}.log").read_text())
        assert records, component
        assert {r.component for r in records} == {component}
        assert {r.kind for r in records} <= {1, 2, 3}
    cas = parse_cmtrace((world.home.logs / "cas.log").read_text())
    assert any("SHA-256 verified" in r.message for r in cas)


def test_warnings_and_errors_carry_their_type_and_multi_line_messages_stay_one_record(
    tmp_path: Path,
) -> None:
    log = ComponentLog(tmp_path, "service")
    log.write("started")
    log.warning("site unreachable")
    log.error("crashed:\nTraceback line 1\nline 2 with ]LOG]!> inside")
    records = parse_cmtrace((tmp_path / "service.log").read_text())
    assert [(r.kind, r.message.splitlines()[0]) for r in records] == [
        (1, "started"),
        (2, "site unreachable"),
        (3, "crashed:"),
    ]
    assert records[2].message.count("\n") == 2


def test_a_log_rotates_at_the_configured_size_to_one_lo_file(
    world: ClientWorld, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["settings", "--home", str(world.home.root), "--log-max-bytes", "5000"]
    )
    assert result.exit_code == 0, result.output
    assert "log_max_bytes=5000" in result.output
    log = ClientHome(world.home.root).log("execmgr")

    def write_records(n: int) -> None:
        for i in range(100):
            log.write(f"t{n} record {i:04d}")

    threads = [threading.Thread(target=write_records, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    current, previous = world.home.logs / "execmgr.log", world.home.logs / "execmgr.lo_"
    assert current.stat().st_size <= 5000
    assert 4000 < previous.stat().st_size <= 5000
    assert sorted(p.name for p in world.home.logs.glob("execmgr.*")) == [
        "execmgr.lo_",
        "execmgr.log",
    ]
    kept = parse_cmtrace(previous.read_text()) + parse_cmtrace(current.read_text())
    # The last two generations hold whole records, each thread's without a gap, up to the end.
    last_of_thread = []
    for n in range(4):
        numbers = [int(r.message.split()[-1]) for r in kept if r.message.startswith(f"t{n} ")]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
        last_of_thread.extend(numbers[-1:])
    assert 99 in last_of_thread and len(kept) > 60


def test_settings_refuses_a_rotation_size_too_small_to_hold_a_record(world: ClientWorld) -> None:
    result = runner.invoke(
        app, ["settings", "--home", str(world.home.root), "--log-max-bytes", "10"]
    )
    assert result.exit_code == 1
    assert "at least 4096" in result.output
    assert ClientHome(world.home.root).load_config().log_max_bytes == 250_000


def test_qm_client_logs_prints_records_readably_with_the_rotated_generation(
    world: ClientWorld, tmp_path: Path
) -> None:
    home = world.home.root
    (world.home.logs).mkdir(parents=True, exist_ok=True)
    log = ComponentLog(world.home.logs, "cas", max_bytes=4096)
    for i in range(80):
        log.write(f"blob {i:03d} verified")
    log.warning("DP unreachable")
    assert (world.home.logs / "cas.lo_").exists()
    result = runner.invoke(app, ["logs", "--home", str(home), "--component", "cas"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z cas warning: DP unreachable", lines[-1]
    )
    numbers = [int(line.split()[-2]) for line in lines if "verified" in line]
    assert numbers == sorted(numbers) and numbers[-1] == 79 and len(numbers) > 40
    assert "<![LOG[" not in result.output

    missing = runner.invoke(app, ["logs", "--home", str(home), "--component", "nosuch"])
    assert missing.exit_code == 1
    assert "no log for the component 'nosuch'" in missing.output


def test_qm_client_logs_follow_prints_new_records_across_a_rotation(
    world: ClientWorld, tmp_path: Path
) -> None:
    log = ComponentLog(world.home.logs, "execmgr", max_bytes=4096)
    log.write("before following")
    proc = subprocess.Popen(
        [sys.executable, "-m", "quartermaster", "client", "logs", "--home", str(world.home.root)]
        + ["--component", "execmgr", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: any("before following" in line for line in seen), "the existing record")
        for i in range(60):  # more than 4096 bytes: the file rotates while followed
            log.write(f"followed record {i:02d}")
        wait_until(lambda: any("followed record 59" in line for line in seen), "the last record")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert (world.home.logs / "execmgr.lo_").exists()
    followed = [line for line in seen if "followed record" in line]
    assert all(" execmgr info: " in line for line in followed)
    assert int(followed[-1].split()[-1]) == 59
