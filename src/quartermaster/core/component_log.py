"""Component logs: one line per event with time, component, thread and text (cas.log, ...)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

_LOCK = threading.Lock()


class ComponentLog:
    def __init__(self, folder: Path, component: str) -> None:
        self.path = folder / f"{component}.log"
        self.component = component
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        line = f"{now}Z {self.component} [{threading.current_thread().name}] {text}\n"
        with _LOCK, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
