"""Status messages: spooled durably first, delivered later, deleted only once acknowledged.

A message is a file in spool/ from the moment it is raised, so a crash or an unreachable
site loses nothing. The site ignores a uid it already holds, so resending is harmless.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from quartermaster.client.home import FULL_DISK, write_private
from quartermaster.client.policy import DeploymentPolicy
from quartermaster.client.timestamps import Clock, format_utc
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.durable_files import fsync_path, sync_file_system
from quartermaster.core.status_catalog import lookup

MAX_BATCH = 1000
# Above this many deferred messages one syncfs makes them durable, below it an fsync each.
# syncfs also writes back whatever else is dirty on the file system, such as the blobs the
# run just put in the cache without an fsync (content_access.py): for a 1 GiB package that
# is a gigabyte written to disk before the program may start.
SYNC_ONE_BY_ONE = 32
MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the site's 16 MiB body limit for a batch

Sender = Callable[[list[dict[str, Any]]], object]


class StatusSpool:
    def __init__(self, folder: Path, clock: Clock, log: ComponentLog) -> None:
        self.folder = folder
        self.clock = clock
        self.log = log
        self._deferred = 0
        self._unsynced: list[tuple[Path, Path]] = []  # (written, final name)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Messages raised inside are written at once but made durable and visible together
        (then renamed) at `flush()` or at the end: re-evaluating 200 applications must not
        cost 400 fsyncs, so many are made durable with one syncfs. Whoever is about to do
        something that cannot be undone (start a program, save local state) calls `flush()`
        first."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            if not self._deferred:
                self.flush()

    def flush(self) -> None:
        if not self._unsynced:
            return
        if len(self._unsynced) > SYNC_ONE_BY_ONE:
            sync_file_system(self.folder)
        else:
            for written, _final in self._unsynced:
                fsync_path(written)
        for written, final in self._unsynced:
            os.replace(written, final)
        fsync_path(self.folder)
        self._unsynced.clear()

    def add(
        self,
        message_id: int,
        insertion_strings: list[Any],
        *,
        deployment_id: str = "",
        package_id: str = "",
        dp: str = "",
        properties: dict[str, Any] | None = None,
        output: str = "",
    ) -> dict[str, Any]:
        """Spool one message; `output` is a failed program's last output (program_output)."""
        entry = lookup(message_id)
        strings = [str(s) for s in insertion_strings]
        message = {
            "uid": uuid.uuid4().hex,
            "message_id": message_id,
            "time": format_utc(self.clock()),
            "severity": entry.severity.value,
            "component": entry.component,
            "deployment_id": deployment_id,
            "package_id": package_id,
            "dp": dp,
            "insertion_strings": strings,
            "properties": dict(properties or {}),
        }
        if output:
            message["output_tail"] = output
        name = f"{time.time_ns():020d}-{message['uid']}.json"  # creation order
        data = json.dumps(message, sort_keys=True).encode("utf-8")
        if not self._deferred or not self._write_deferred(name, data):
            write_private(self.folder / name, data)
        self.log.write(f"status {message_id} spooled: {entry.render(strings)}")
        return message

    def _write_deferred(self, name: str, data: bytes) -> bool:
        """False on a full disk: the message is then written at once, from the reserve."""
        self.folder.mkdir(parents=True, exist_ok=True)
        written = self.folder / f".{name}.part"  # not *.json: invisible until flushed
        try:
            fd = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            written.unlink(missing_ok=True)
            if exc.errno not in FULL_DISK:
                raise
            return False
        self._unsynced.append((written, self.folder / name))
        return True

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        """Spooled messages, oldest first; a file that does not parse is set aside as .bad."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError) as exc:
                self.log.warning(f"spooled message {path.name} is unreadable ({exc}); set aside")
                path.rename(path.with_suffix(".bad"))
        return found

    def deliver(self, send: Sender) -> int:
        """Send in batches; delete each batch once the site answered. Errors propagate."""
        delivered = 0
        for batch in _batches(self.pending()):
            send([message for _, message in batch])
            for path, _ in batch:
                path.unlink(missing_ok=True)
            delivered += len(batch)
        if delivered:
            self.log.write(f"{delivered} status messages delivered")
        return delivered


def _batches(
    pending: list[tuple[Path, dict[str, Any]]],
) -> list[list[tuple[Path, dict[str, Any]]]]:
    """At most MAX_BATCH messages and about MAX_BATCH_BYTES of JSON per request: messages
    with program output are large, and a batch the site refuses as too big would block the
    spool for good."""
    batches: list[list[tuple[Path, dict[str, Any]]]] = [[]]
    size = 0
    for item in pending:
        item_size = len(json.dumps(item[1]))
        if batches[-1] and (len(batches[-1]) >= MAX_BATCH or size + item_size > MAX_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item_size
    return [batch for batch in batches if batch]


class DeploymentReporter:
    """Raises the messages of one deployment: %1-%3 and the identifying properties filled in."""

    def __init__(self, spool: StatusSpool, deployment: DeploymentPolicy) -> None:
        self.spool = spool
        self.deployment = deployment

    def emit(
        self,
        message_id: int,
        *extra: Any,
        dp: str = "",
        properties: dict[str, Any] | None = None,
        output: str = "",
    ) -> None:
        d = self.deployment
        self.spool.add(
            message_id,
            [d.deployment_id, d.package_id, d.program.name, *extra],
            deployment_id=d.deployment_id,
            package_id=d.package_id,
            dp=dp,
            properties={
                "source_version": d.source_version,
                "package_hash": d.package_hash,
                **(properties or {}),
            },
            output=output,
        )
