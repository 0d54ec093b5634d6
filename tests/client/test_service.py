"""The service loop: keeps running through a failed run, ends when asked."""

from __future__ import annotations

import threading
from pathlib import Path

from quartermaster.client.service import serve
from quartermaster.core.component_log import ComponentLog


def test_the_service_survives_a_crashing_run_and_stops_when_asked(tmp_path: Path) -> None:
    stop = threading.Event()
    runs: list[int] = []

    def cycle() -> float:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        stop.set()
        return 3600.0

    log = ComponentLog(tmp_path, "policyagent")
    serve(cycle, stop, log, crash_delay=0.0)
    text = log.path.read_text()
    assert len(runs) == 2
    assert "agent run crashed" in text and "RuntimeError: boom" in text
    assert text.splitlines()[-1].startswith("<![LOG[service stopped]LOG]!>")


def test_a_stop_before_the_first_run_runs_nothing(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    runs: list[int] = []

    def cycle() -> float:
        runs.append(1)
        return 0.0

    serve(cycle, stop, ComponentLog(tmp_path, "policyagent"))
    assert runs == []
