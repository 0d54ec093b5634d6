"""One logging configuration for the site, the DPs and the client agent.

Every process logs through the standard `logging` module to stderr: a line a person reads by
default, or one JSON object per line (`--log-format json`) for a log collector. With
`--log-file` the same lines also go to a file that rotates by size. A request's ID (the
`X-Request-ID` answer header, the `request_id` of an error body) is on every line logged
while the request is handled, so one grep finds everything about it (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
MAX_BYTES = 10 * 1024 * 1024  # a rotated file's size
BACKUPS = 5  # rotated files kept beside the current one
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = ContextVar("quartermaster_request_id", default="")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HANDLER_MARK = "_quartermaster_handler"
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def new_request_id() -> str:
    return secrets.token_hex(8)


def accept_request_id(offered: str | None) -> str:
    """The caller's own ID when it is a sane token (a proxy's, to join the logs), else new."""
    if offered and _VALID_ID.fullmatch(offered):
        return offered
    return new_request_id()


def current_request_id() -> str:
    return _REQUEST_ID.get()


def bind_request_id(request_id: str) -> Any:
    """Set the ID for this task/thread context; returns the token for `unbind_request_id`."""
    return _REQUEST_ID.set(request_id)


def unbind_request_id(token: Any) -> None:
    _REQUEST_ID.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra={...}` a caller passed, in the order given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-12-01T10:00:00.123Z INFO  qm.site.access [id] GET /x 200 key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "") or current_request_id()
        parts = [_time(record), f"{record.levelname:<7}", record.name]
        if request_id:
            parts.append(f"[{request_id}]")
        parts.append(record.getMessage())
        fields = {k: v for k, v in _fields(record).items() if k != "request_id"}
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is when a line is logged, not as it was at set-up: a
    thread still serving after its caller swapped and closed stderr (a test harness
    capturing output) would otherwise log into a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler's own assignment; the stream is always the current stderr."""


def configure(
    log_format: str = "text",
    level: str = "info",
    log_file: Path | None = None,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
) -> None:
    """Send every logger's lines to stderr (and `log_file`, rotated) in `log_format`.

    Calling it again replaces what an earlier call installed and nothing else.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handlers: list[logging.Handler] = [CurrentStderrHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # their own access lines would repeat ours (httpx: one line per request a DP or client
    # sends); their warnings and errors still come through
    for name in ("uvicorn.access", "aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # S3 clients: at debug level they log each request's headers (the access key ID and
    # signatures of an s3:// store or library), which no log level of ours should show
    for name in ("boto3", "botocore", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
