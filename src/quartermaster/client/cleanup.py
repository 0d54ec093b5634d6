"""Keeping a client home small: work folders and old program logs do not pile up.

A deployment's work folder holds a full copy of its package. After a successful run it is
of no further use and is deleted at once. After a failure it is kept, so an administrator
can look at what the program saw, but only for `failed_work_keep_days` (7 by default):
each agent run deletes work folders (and half-built ones) older than that, and program logs
older than `program_log_keep_days` (30). The content cache keeps to its own limit
(client/cache.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from quartermaster.client.local_state import SUCCESS_RESULTS, Result
from quartermaster.client.work_layout import remove_tree
from quartermaster.core.component_log import ComponentLog

DAY = 86400.0
FAILED_WORK_KEEP_DAYS = 7
PROGRAM_LOG_KEEP_DAYS = 30
_DONE = SUCCESS_RESULTS | {Result.COMPLIANT}


def after_run(work_root: Path, deployment_id: str, result: str, log: ComponentLog) -> bool:
    """Delete the deployment's work folder if its run succeeded; True if one was deleted."""
    folder = work_root / deployment_id
    if result not in _DONE or not folder.exists():
        return False
    remove_tree(folder)
    log.write(f"deployment {deployment_id}: work folder {folder} deleted after success")
    return True


def sweep(
    work_root: Path,
    program_logs: Path,
    log: ComponentLog,
    *,
    keep_failed_days: float = FAILED_WORK_KEEP_DAYS,
    keep_logs_days: float = PROGRAM_LOG_KEEP_DAYS,
    now: float | None = None,
) -> list[Path]:
    """Delete work folders and program logs last changed longer ago than their bound."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for folder, bound in ((work_root, keep_failed_days), (program_logs, keep_logs_days)):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            try:
                age = now - entry.lstat().st_mtime
            except FileNotFoundError:
                continue
            if age > bound * DAY:
                remove_tree(entry)
                removed.append(entry)
    for entry in removed:
        log.write(f"{entry} deleted: unchanged for longer than it is kept")
    return removed
