"""The job runner of one site process: claims queued jobs, runs each in a thread of its
own, renews their heartbeat, and takes back the jobs of processes that died.

Every site process runs one (`qm site serve` starts it; an in-process app starts it at the
first job). A job's work reports progress through its `JobContext`, which is also where it
learns that it must stop: the process is stopping (the job is queued again and resumed by
the next process) or another process took the job back.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quartermaster.core.errors import QMError
from quartermaster.site.jobs import records
from quartermaster.site.models import Job

if TYPE_CHECKING:
    from quartermaster.site.context import SiteContext

log = logging.getLogger("quartermaster.site.jobs")
POLL = 1.0  # seconds between looks for queued jobs another process submitted
HEARTBEAT = 5.0
TAKE_BACK_EVERY = 15.0
PROGRESS_EVERY = 0.5  # seconds between progress writes of one job
MAX_RUNNING = 4


class JobStopped(Exception):
    """The job must stop now: its process is stopping, or it is no longer this process's."""


@dataclass
class JobContext:
    """What a running job's work sees: its parameters, where to put temps, how to report."""

    runner: JobRunner
    job_id: int
    kind: str
    target: str
    params: dict[str, Any]
    attempts: int
    _last: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tmp(self) -> Path:
        """This job's own temp folder in the library (emptied when the job starts)."""
        return self.runner.ctx.library.root / "tmp" / f"job-{self.job_id}"

    def check(self) -> None:
        if self.runner.stopping:
            raise JobStopped("the site process is stopping")

    def report(self, files_done: int, bytes_done: int, files_total: int, bytes_total: int) -> None:
        """Progress (from any thread); written at most every PROGRESS_EVERY seconds, and
        always when complete. Raises JobStopped when the job must stop."""
        self.check()
        now = time.monotonic()
        complete = files_done >= files_total and bytes_done >= bytes_total
        with self._lock:
            if not complete and now - self._last < PROGRESS_EVERY:
                return
            self._last = now
            still_ours = records.progress(
                self.runner.ctx.db,
                self.job_id,
                self.runner.owner,
                (files_done, files_total),
                (bytes_done, bytes_total),
            )
        if not still_ours:
            raise JobStopped("another site process took this job back")

    def submit(self, kind: str, target: str, params: dict[str, Any]) -> int:
        """A follow-up job (a snapshot's distribution)."""
        with self.runner.ctx.db.session() as session:
            job_id = records.submit(session, kind, target, params, f"job {self.job_id}").id
        self.runner.kick()
        return job_id


Work = Callable[["SiteContext", JobContext], dict[str, Any]]


class JobRunner:
    def __init__(self, ctx: SiteContext, work: dict[str, Work] | None = None) -> None:
        from quartermaster.site.jobs.kinds import WORK

        self.ctx = ctx
        self.work = dict(work if work is not None else WORK)
        self.owner = records.this_owner()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """A job was submitted: look now (starting the runner if it is not running)."""
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop claiming; running jobs stop at their next progress report and are queued
        again for the next process."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0))
        for thread in list(self._running.values()):
            thread.join(max(deadline - time.monotonic(), 0))

    def _loop(self) -> None:
        last_beat = last_take_back = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now - last_take_back >= TAKE_BACK_EVERY:
                    last_take_back = now
                    for job_id, state in records.take_back_abandoned(self.ctx.db):
                        log.warning("job %s: its process is gone; now %s", job_id, state)
                if now - last_beat >= HEARTBEAT:
                    last_beat = now
                    records.heartbeat(self.ctx.db, self.owner)
                self._claim()
            except Exception:  # the database may be away for a while: try again later
                log.exception("the job runner could not reach the database")
            self._wake.wait(POLL)
            self._wake.clear()

    def _claim(self) -> None:
        self._running = {k: t for k, t in self._running.items() if t.is_alive()}
        while len(self._running) < MAX_RUNNING and not self._stop.is_set():
            job_id = records.claim_next(self.ctx.db, self.owner, tuple(self.work))
            if job_id is None:
                return
            thread = threading.Thread(target=self._run, args=(job_id,), name=f"job-{job_id}")
            self._running[job_id] = thread
            thread.start()

    def _run(self, job_id: int) -> None:
        with self.ctx.db.session() as session:
            job = session.get(Job, job_id)
            if job is None:  # claimed a moment ago: only a deleted database removes it
                raise RuntimeError(f"job {job_id} vanished after it was claimed")
            job_ctx = JobContext(self, job.id, job.kind, job.target, dict(job.params), job.attempts)
        log.info(
            "job %s (%s %s) started, attempt %s",
            job_id,
            job_ctx.kind,
            job_ctx.target,
            job_ctx.attempts,
        )
        shutil.rmtree(job_ctx.tmp, ignore_errors=True)  # what an interrupted attempt left
        try:
            result = self.work[job_ctx.kind](self.ctx, job_ctx)
        except JobStopped as exc:
            self._requeue(job_id, str(exc))
        except QMError as exc:
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            log.warning("job %s failed: %s", job_id, reason)
            records.finish(self.ctx.db, job_id, self.owner, records.FAILED, None, reason)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            reason = f"internal error ({type(exc).__name__}); see the site server's log"
            records.finish(self.ctx.db, job_id, self.owner, records.FAILED, None, reason)
        else:
            log.info("job %s succeeded: %s", job_id, result)
            records.finish(self.ctx.db, job_id, self.owner, records.SUCCEEDED, result)
        finally:
            shutil.rmtree(job_ctx.tmp, ignore_errors=True)

    def _requeue(self, job_id: int, why: str) -> None:
        """A job stopped with its process is resumed by the next one (no attempt lost)."""
        from sqlalchemy import update

        with self.ctx.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.owner == self.owner, Job.state == records.RUNNING)
                .values(
                    state=records.QUEUED,
                    owner="",
                    attempts=Job.attempts - 1,
                    reason=f"resumed: {why}",
                )
            )
        log.info("job %s stopped (%s); queued again", job_id, why)


def runner_of(ctx: SiteContext) -> JobRunner:
    """This process's job runner, made at first use and stopped by `ctx.close()`; `qm site
    serve` starts it, else the first job submitted does."""
    if ctx._jobs is None:
        ctx._jobs = JobRunner(ctx)
    runner: JobRunner = ctx._jobs
    return runner
