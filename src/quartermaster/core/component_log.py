"""Component logs (cas.log, execmgr.log, ...) in the CMTrace line format, through `logging`.

Administrators of Configuration Manager read agent logs with CMTrace or OneTrace; both parse
one record per `<![LOG[message]LOG]!><time="HH:MM:SS.mmm+TZ" date="MM-DD-YYYY"
component="X" context="" type="1|2|3" thread="N" file="">` line (type 1 information,
2 warning, 3 error; TZ is the bias in minutes, `+000` here since every time is UTC). Each
log file has one `RotatingFileHandler`, shared by every writer in the process, so writes are
serialised by the handler's own lock and the file stays open; at `max_bytes` (250,000 by
default, as in Configuration Manager) it is renamed to `<component>.lo_`, replacing the one
kept before. Nothing needs logrotate.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 250_000
ROTATED_SUFFIX = ".lo_"
INFO, WARNING, ERROR = 1, 2, 3
_TYPES = {logging.INFO: INFO, logging.WARNING: WARNING, logging.ERROR: ERROR}
_LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING, ERROR: logging.ERROR}
_MAX_OPEN = 64  # open log files per process; the least recently used is closed beyond it

_handlers: OrderedDict[Path, CMTraceFileHandler] = OrderedDict()
_registry_lock = threading.Lock()


class CMTraceFormatter(logging.Formatter):
    """One record as one CMTrace line; the component is the record's `component` extra."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = message.replace("]LOG]!>", "]LOG]!)")  # the only sequence that ends a message
        component = getattr(record, "component", record.name.rsplit(".", 1)[-1])
        kind = _TYPES.get(record.levelno, ERROR if record.levelno > logging.WARNING else INFO)
        return (
            f"<![LOG[{message}]LOG]!>"
            f'<time="{when:%H:%M:%S}.{when.microsecond // 1000:03d}+000" '
            f'date="{when:%m-%d-%Y}" component="{component}" context="" '
            f'type="{kind}" thread="{threading.get_native_id()}" file="">'
        )


class CMTraceFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated file whose one previous generation is `<name>.lo_`."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=1, encoding="utf-8", delay=True)
        self.setFormatter(CMTraceFormatter())

    def _open(self) -> Any:
        """A new log is readable by its writer only: logs name hosts, paths and commands."""
        return open(  # noqa: SIM115 - the handler owns and closes the stream
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=lambda path, flags: os.open(path, flags, 0o600),
        )

    def rotation_filename(self, default_name: str) -> str:
        return str(rotated_path(Path(self.baseFilename)))


def rotated_path(path: Path) -> Path:
    """cas.log → cas.lo_"""
    return path.with_suffix(ROTATED_SUFFIX)


def _handler(path: Path, max_bytes: int) -> CMTraceFileHandler:
    with _registry_lock:
        handler = _handlers.get(path)
        if handler is None:
            handler = _handlers[path] = CMTraceFileHandler(path, max_bytes)
            while len(_handlers) > _MAX_OPEN:
                _, oldest = _handlers.popitem(last=False)
                oldest.close()
        else:
            _handlers.move_to_end(path)
        handler.maxBytes = max_bytes
        return handler


class ComponentLog:
    """The log of one component in one folder: `write` for information, `warning`, `error`."""

    def __init__(self, folder: Path, component: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = folder / f"{component}.log"
        self.component = component
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        # One logger per file: two homes in one process never share a handler.
        self.logger = logging.getLogger(f"quartermaster.logs.{component}.{self.path}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)

    def _emit(self, level: int, text: str) -> None:
        handler = _handler(self.path.absolute(), self.max_bytes)
        if handler not in self.logger.handlers:
            for old in list(self.logger.handlers):
                self.logger.removeHandler(old)
            self.logger.addHandler(handler)
        self.logger.log(level, "%s", text, extra={"component": self.component})

    def write(self, text: str) -> None:
        self._emit(logging.INFO, text)

    def warning(self, text: str) -> None:
        self._emit(logging.WARNING, text)

    def error(self, text: str) -> None:
        self._emit(logging.ERROR, text)


def close_all() -> None:
    """Close every open log file (before a process replaces itself, and in tests)."""
    with _registry_lock:
        while _handlers:
            _, handler = _handlers.popitem()
            handler.close()


@dataclass(frozen=True)
class LogEntry:
    """One parsed line; `when` is None for a line that is not in the format."""

    message: str
    when: datetime | None
    component: str
    kind: int
    thread: str

    @property
    def kind_name(self) -> str:
        return {INFO: "info", WARNING: "warning", ERROR: "error"}.get(self.kind, "info")


_ENTRY = re.compile(
    r"<!\[LOG\[(?P<message>.*?)\]LOG\]!>"
    r'<time="(?P<time>\d\d:\d\d:\d\d\.\d{3})[+-]\d{3}" date="(?P<date>\d\d-\d\d-\d{4})" '
    r'component="(?P<component>[^"]*)" context="[^"]*" type="(?P<type>\d)" '
    r'thread="(?P<thread>[^"]*)" file="[^"]*">',
    re.DOTALL,
)


def parse_entries(text: str) -> Iterator[LogEntry]:
    """The records of a log file's text; multi-line messages stay one record."""
    position = 0
    for match in _ENTRY.finditer(text):
        stray = text[position : match.start()].strip()
        if stray:  # a line written before the CMTrace format, or torn by a crash
            yield LogEntry(stray, None, "", INFO, "")
        position = match.end()
        when = datetime.strptime(f"{match['date']} {match['time']}", "%m-%d-%Y %H:%M:%S.%f")
        yield LogEntry(
            match["message"],
            when.replace(tzinfo=UTC),
            match["component"],
            int(match["type"]),
            match["thread"],
        )
    stray = text[position:].strip()
    if stray:
        yield LogEntry(stray, None, "", INFO, "")


def read_entries(path: Path) -> list[LogEntry]:
    """The records of `<component>.lo_` then `<component>.log`, oldest first."""
    entries: list[LogEntry] = []
    for part in (rotated_path(path), path):
        try:
            text = part.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        entries.extend(parse_entries(text))
    return entries


def readable(entry: LogEntry) -> str:
    """One record for a terminal: `2026-12-03 06:10:00.123Z cas info: message`."""
    when = (
        f"{entry.when:%Y-%m-%d %H:%M:%S}.{entry.when.microsecond // 1000:03d}Z"
        if entry.when
        else "-"
    )
    return f"{when} {entry.component or '?'} {entry.kind_name}: {entry.message}"
