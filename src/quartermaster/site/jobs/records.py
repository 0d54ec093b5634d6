"""Jobs in the database: submit, claim (each job by one site process only), report
progress, finish, and take back the jobs of a process that died.

A claim is one atomic UPDATE of a queued row: on PostgreSQL the row is picked with
`FOR UPDATE SKIP LOCKED`, so two processes never take the same row and neither waits for the
other; on SQLite the database's single writer makes the UPDATE ... WHERE state = 'queued'
atomic. The claiming process's `owner` (host, process ID and that process's start time) and
a heartbeat it renews tell the others whether it still lives.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, aliased

from quartermaster.core.errors import InvalidInput, NotFound
from quartermaster.site.db import Database
from quartermaster.site.models import Job, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
FINISHED = (SUCCEEDED, FAILED)
LEASE = timedelta(seconds=60)  # a heartbeat older than this: its process is gone
MAX_ATTEMPTS = 3  # a job interrupted this often is failed, not resumed again


def _start_ticks(pid: int) -> str:
    """When process `pid` started (clock ticks since boot), '' where /proc is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` ran on this host and that process no longer exists (its ID may
    have been given to a new process: the start time tells). False when unknown."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not ticks:
        return False
    now = _start_ticks(int(pid_text))
    return now != ticks  # '' (no such process) or another process with that ID


def submit(
    session: Session,
    kind: str,
    target: str,
    params: dict[str, Any],
    created_by: str = "",
) -> Job:
    job = Job(
        kind=kind,
        state=QUEUED,
        target=target,
        params=params,
        reason="",
        owner="",
        attempts=0,
        created_by=created_by,
        created=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def claim_next(db: Database, owner: str, kinds: tuple[str, ...]) -> int | None:
    """Take the oldest queued job of these kinds for `owner`; its ID, or None."""
    now = utcnow()
    with db.session() as session:
        other = aliased(Job)  # not correlated with the UPDATE's own table
        oldest = (
            select(other.id)
            .where(other.state == QUEUED, other.kind.in_(kinds))
            .order_by(other.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        taken = session.execute(
            update(Job)
            .where(Job.id == oldest.scalar_subquery(), Job.state == QUEUED)
            .values(
                state=RUNNING,
                owner=owner,
                attempts=Job.attempts + 1,
                started=now,
                heartbeat=now,
            )
            .returning(Job.id)
        ).scalar_one_or_none()
    return None if taken is None else int(taken)


def progress(
    db: Database,
    job_id: int,
    owner: str,
    files: tuple[int, int] | None = None,
    size: tuple[int, int] | None = None,
) -> bool:
    """Record progress (done, in all) and renew the heartbeat; False if the job is no longer
    this owner's (another process took it back: stop working on it)."""
    values: dict[str, Any] = {"heartbeat": utcnow()}
    if files is not None:
        values["files_done"], values["files_total"] = files
    if size is not None:
        values["bytes_done"], values["bytes_total"] = size
    with db.session() as session:
        changed = _count(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.owner == owner, Job.state == RUNNING)
                .values(**values)
            )
        )
    return bool(changed)


def heartbeat(db: Database, owner: str) -> None:
    with db.session() as session:
        session.execute(
            update(Job).where(Job.owner == owner, Job.state == RUNNING).values(heartbeat=utcnow())
        )


def finish(
    db: Database,
    job_id: int,
    owner: str,
    state: str,
    result: dict[str, Any] | None = None,
    reason: str = "",
) -> bool:
    values: dict[str, Any] = {"state": state, "result": result, "finished": utcnow()}
    if reason:  # else the job keeps its note (e.g. "resumed: ...")
        values["reason"] = reason
    with db.session() as session:
        changed = _count(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.owner == owner, Job.state == RUNNING)
                .values(**values)
            )
        )
    return bool(changed)


def take_back_abandoned(db: Database, now: datetime | None = None) -> list[tuple[int, str]]:
    """Jobs whose process died (gone from this host, or silent past the lease): queued
    again to be resumed, or failed with the reason once interrupted MAX_ATTEMPTS times.
    Returns (job ID, new state)."""
    now = now or utcnow()
    changed: list[tuple[int, str]] = []
    with db.session() as session:
        running = session.scalars(select(Job).where(Job.state == RUNNING)).all()
        for job in running:
            stale = job.heartbeat is None or job.heartbeat < now - LEASE
            if not (stale or owner_is_gone(job.owner)):
                continue
            why = f"the site process running it ({job.owner}) stopped"
            claim = (
                update(Job)
                .where(Job.id == job.id, Job.state == RUNNING, Job.owner == job.owner)
                .execution_options(synchronize_session=False)
            )
            if job.attempts >= MAX_ATTEMPTS:
                reason = f"interrupted {job.attempts} times; the last time {why}"
                values: dict[str, Any] = {"state": FAILED, "reason": reason, "finished": now}
            else:
                values = {"state": QUEUED, "reason": f"resumed: {why}", "owner": ""}
            if _count(session.execute(claim.values(**values))):
                changed.append((job.id, values["state"]))
    return changed


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "kind": job.kind,
        "state": job.state,
        "target": job.target,
        "params": job.params,
        "result": job.result,
        "reason": job.reason,
        "owner": job.owner,
        "attempts": job.attempts,
        "files_done": job.files_done,
        "files_total": job.files_total,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "created_by": job.created_by,
        "created": job.created.isoformat(),
        "started": job.started.isoformat() if job.started else None,
        "heartbeat": job.heartbeat.isoformat() if job.heartbeat else None,
        "finished": job.finished.isoformat() if job.finished else None,
    }


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", "list jobs with `qm job list`")
    return job


def list_jobs(
    session: Session, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Newest first."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"job state {state!r} is unknown", f"one of {', '.join(STATES)}")
    query = select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)
    if state is not None:
        query = query.where(Job.state == state)
    return [job_dict(job) for job in session.scalars(query)]


def running_jobs(session: Session) -> list[dict[str, Any]]:
    """Jobs queued or running, oldest first: what a console page of running work shows."""
    query = select(Job).where(Job.state.in_((QUEUED, RUNNING))).order_by(Job.id)
    return [job_dict(job) for job in session.scalars(query)]


def counts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(count) for state, count in rows}


def _count(result: Any) -> int:
    """Rows an UPDATE changed."""
    return int(cast(CursorResult[Any], result).rowcount)
