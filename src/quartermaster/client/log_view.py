"""`qm client logs`: the component logs of a client home, readable, optionally followed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from quartermaster.client.home import ClientHome
from quartermaster.core.component_log import (
    parse_entries,
    read_entries,
    readable,
    rotated_path,
)
from quartermaster.core.errors import NotFound

FOLLOW_INTERVAL = 0.5  # seconds between looks at the files when following
RECORD_END = 'file="">'


def log_paths(home: ClientHome, component: str = "") -> list[Path]:
    """The `.log` files to show: one component's, or every one in the home."""
    if component:
        path = home.logs / f"{component}.log"
        if not path.exists() and not path.with_suffix(".lo_").exists():
            known = sorted(p.stem for p in home.logs.glob("*.log"))
            raise NotFound(
                f"no log for the component {component!r} in {home.logs}",
                f"components with a log: {', '.join(known) or 'none yet'}",
            )
        return [path]
    if not home.logs.is_dir():
        raise NotFound(f"{home.logs} does not exist", "the agent has not run in this home yet")
    return sorted(home.logs.glob("*.log"))


def merged_records(paths: list[Path]) -> list[str]:
    """Every record of `paths` (and their .lo_), in time order; undated lines keep their place."""
    entries = [(index, entry) for path in paths for index, entry in enumerate(read_entries(path))]
    dated = sorted((e for e in entries if e[1].when is not None), key=lambda e: (e[1].when, e[0]))
    if len(dated) == len(entries):
        return [readable(entry) for _, entry in dated]
    return [readable(entry) for _, entry in entries]


def follow_logs(paths: list[Path], interval: float = FOLLOW_INTERVAL) -> Iterator[str]:
    """Records appended to `paths` from now on. When a file is rotated, the rest of the old
    generation (now `.lo_`) is read before the new file, so no record is skipped."""
    files = {path: _identity(path) for path in paths}
    offsets = {path: files[path][1] for path in paths}
    pending = {path: "" for path in paths}
    while True:
        for path in paths:
            inode, size = _identity(path)
            if inode != files[path][0]:  # rotated: finish the old file, start the new one
                old = rotated_path(path)
                if _identity(old)[0] == files[path][0]:
                    yield from _records(pending, path, _read_from(old, offsets[path]))
                offsets[path], pending[path] = 0, ""
            elif size < offsets[path]:  # truncated
                offsets[path], pending[path] = 0, ""
            files[path] = (inode, size)
            if size > offsets[path]:
                chunk = _read_from(path, offsets[path], size)
                offsets[path] += len(chunk)
                yield from _records(pending, path, chunk)
        time.sleep(interval)


def _read_from(path: Path, offset: int, end: int | None = None) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read() if end is None else handle.read(end - offset)
    except FileNotFoundError:
        return b""


def _records(pending: dict[Path, str], path: Path, chunk: bytes) -> Iterator[str]:
    """Whole records of what was read; a record still being written waits for the next read."""
    text = pending[path] + chunk.decode("utf-8", errors="replace")
    complete, marker, rest = text.rpartition(RECORD_END)
    pending[path] = rest
    if marker:
        for entry in parse_entries(complete + marker):
            yield readable(entry)


def _identity(path: Path) -> tuple[int, int]:
    """(inode, size) of the file, (0, 0) while it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, 0
    return stat.st_ino, stat.st_size
