"""One deployment from "it is due" to a result: requirements, manifest, content, files, program.

Every step reports with status messages and records its outcome in the deployment's local
state; a step that fails stops the run without touching anything further.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from quartermaster.client.cache import ContentCache
from quartermaster.client.content_access import ContentAccess, ContentUnavailable
from quartermaster.client.execution import ProgramRun, exit_report, run_program
from quartermaster.client.home import ClientHome, write_private
from quartermaster.client.local_state import DeploymentState, Result
from quartermaster.client.machine_facts import MachineFacts
from quartermaster.client.policy import DeploymentPolicy
from quartermaster.client.requirements import unmet_requirement
from quartermaster.client.scheduling import retry_delay
from quartermaster.client.site_link import Location, SiteApi, SiteUnreachable
from quartermaster.client.status_spool import DeploymentReporter, StatusSpool
from quartermaster.client.timestamps import Clock, format_utc
from quartermaster.client.trust import ManifestRefused, accept_manifest
from quartermaster.client.upgrade import agent_environment
from quartermaster.client.work_layout import lay_out
from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import HashMismatch, QMError
from quartermaster.core.manifest import Manifest
from quartermaster.core.program import Outcome
from quartermaster.core.signing import PublicKey
from quartermaster.core.store_layout import manifest_path


@dataclass
class RunContext:
    """What every deployment run of one agent run shares."""

    home: ClientHome
    site: SiteApi
    site_code: str
    keys: dict[str, PublicKey]
    cache: ContentCache
    content: ContentAccess
    spool: StatusSpool
    facts: MachineFacts
    clock: Clock
    should_stop: Callable[[], bool] = lambda: False  # the service was asked to stop
    checkpoint: Callable[[], None] = lambda: None  # spool and state durable on disk now


class DeploymentRunner:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.log = ctx.home.log("execmgr")
        self.cas_log = ctx.home.log("cas")

    def install(self, deployment: DeploymentPolicy, local: DeploymentState) -> None:
        reporter = DeploymentReporter(self.ctx.spool, deployment)
        if not self._requirements_met(deployment, local, reporter):
            return
        manifest = self._manifest(deployment, local, reporter)
        if manifest is None:
            return
        try:
            while True:
                folder = self._prepare(deployment, manifest, local, reporter)
                if folder is None or not self._execute(deployment, folder, local, reporter):
                    return
        finally:
            self.ctx.cache.make_room(0)

    def _requirements_met(
        self, deployment: DeploymentPolicy, local: DeploymentState, reporter: DeploymentReporter
    ) -> bool:
        reason = unmet_requirement(deployment.program.requirements, self.ctx.facts)
        if not reason:
            return True
        self.log.write(f"deployment {deployment.deployment_id}: requirements not met: {reason}")
        version = deployment.source_version
        already_told = (local.source_version, local.result, local.reason) == (
            version,
            Result.REQUIREMENTS_NOT_MET,
            reason,
        )
        if not already_told:
            reporter.emit(10018, reason)
        local.record_step(version, Result.REQUIREMENTS_NOT_MET, reason)
        return False

    def _manifest(
        self, deployment: DeploymentPolicy, local: DeploymentState, reporter: DeploymentReporter
    ) -> Manifest | None:
        """The verified manifest, from the local copy or the site; 10055 if refused."""
        version = deployment.source_version
        stored = manifest_path(self.ctx.home.root, deployment.package_hash)
        try:
            return self._stored_manifest(stored, deployment)
        except (ManifestRefused, OSError, ValueError):
            stored.unlink(missing_ok=True)
        try:
            envelope = self.ctx.site.manifest(deployment.package_hash)
            manifest = accept_manifest(envelope, self.ctx.keys, deployment, self.ctx.site_code)
        except ManifestRefused as exc:
            self.cas_log.warning(f"manifest {deployment.package_hash} refused: {exc}")
            reporter.emit(10055, version, exc.message)
            local.record_step(version, Result.MANIFEST_REFUSED, exc.message)
            return None
        except SiteUnreachable:
            raise
        except QMError as exc:
            reason = f"the site did not give the manifest: {exc.message}"
            reporter.emit(10051, version, reason)
            local.record_step(version, Result.CONTENT_UNAVAILABLE, reason)
            return None
        write_private(stored, canonical_json(envelope))
        return manifest

    def _stored_manifest(self, path: Path, deployment: DeploymentPolicy) -> Manifest:
        envelope = json.loads(path.read_bytes())
        return accept_manifest(envelope, self.ctx.keys, deployment, self.ctx.site_code)

    def _prepare(
        self,
        deployment: DeploymentPolicy,
        manifest: Manifest,
        local: DeploymentState,
        reporter: DeploymentReporter,
    ) -> Path | None:
        """Content in the cache and laid out in the work folder; None if that failed."""
        version = deployment.source_version
        for _ in range(2):  # a second pass only after a damaged cached blob was removed
            try:
                got = self.ctx.content.obtain(manifest, lambda: self._locate(deployment), reporter)
            except ContentUnavailable as exc:
                local.record_step(version, Result.CONTENT_UNAVAILABLE, exc.message)
                return None
            except HashMismatch as exc:  # a cached chunk, read into a file being assembled
                self._remove_damaged(exc)
                continue
            try:
                return lay_out(
                    manifest,
                    self.ctx.cache,
                    self.ctx.home.work,
                    deployment.deployment_id,
                    verified=got.fetched,
                )
            except HashMismatch as exc:
                self._remove_damaged(exc)
            except OSError as exc:  # e.g. a full disk: not an attempt, tried again next run
                reason = f"the files could not be laid out: {exc}"
                reporter.emit(10007, reason)
                local.record_step(version, Result.NOT_STARTED, reason)
                return None
        reason = "cached content was damaged twice in a row"
        reporter.emit(10051, version, reason)
        local.record_step(version, Result.CONTENT_UNAVAILABLE, reason)
        return None

    def _remove_damaged(self, exc: HashMismatch) -> None:
        self.cas_log.warning(f"cached blob {exc.expected} is damaged; removed: {exc}")
        self.ctx.cache.remove(exc.expected)

    def _locate(self, deployment: DeploymentPolicy) -> list[Location]:
        try:
            return self.ctx.site.locations(deployment.package_hash)
        except SiteUnreachable:
            raise
        except QMError as exc:
            self.cas_log.write(f"no locations for {deployment.package_hash}: {exc}")
            return []

    def _execute(
        self,
        deployment: DeploymentPolicy,
        folder: Path,
        local: DeploymentState,
        reporter: DeploymentReporter,
    ) -> bool:
        """Run the program once and record the result; True asks for an immediate retry."""
        spec = deployment.program
        self.log.write(
            f"deployment {deployment.deployment_id}: starting {spec.command!r} in {folder}"
        )
        reporter.emit(10005, spec.command)
        started = self.ctx.clock()  # the rerun rules compare an attempt's start to a deadline
        local.running = format_utc(started)  # still set at the next start: we were killed
        self.ctx.checkpoint()  # what was reported, and the mark, durable before the program
        run = run_program(
            spec,
            folder,
            self._program_log(deployment),
            {
                "QM_DEPLOYMENT_ID": deployment.deployment_id,
                "QM_PACKAGE_ID": deployment.package_id,
                "QM_SOURCE_VERSION": str(deployment.source_version),
                "QM_PROGRAM": spec.name,
                **agent_environment(self.ctx.home.root),
            },
            self.ctx.should_stop,
        )
        local.running = None
        retry_now = False
        if run.interrupted:
            self.interrupted(deployment, local, reporter, started, run.output)
        elif run.start_error:
            self._not_started(deployment, local, reporter, run.start_error, started)
        elif run.timed_out or run.exit_code is None:
            reporter.emit(10070, spec.max_runtime, output=run.output)
            local.record_run(deployment.source_version, Result.TIMED_OUT, None, started)
        else:
            retry_now = self._record_exit(deployment, run, run.exit_code, local, reporter, started)
        self.log.write(
            f"deployment {deployment.deployment_id}: {_describe(run)}; result {local.result}"
        )
        return retry_now

    def _record_exit(
        self,
        deployment: DeploymentPolicy,
        run: ProgramRun,
        code: int,
        local: DeploymentState,
        reporter: DeploymentReporter,
        started: datetime,
    ) -> bool:
        """A failure (retries exhausted included) carries the program's last output."""
        delay = self.retry_later(deployment, code, local, reporter, started)
        if delay is not None:
            return delay == 0
        report = exit_report(deployment.program, code)
        output = run.output if report.result == Result.FAILED else ""
        reporter.emit(
            report.message_id, *report.extra, properties={"exit_code": code}, output=output
        )
        local.record_run(deployment.source_version, report.result, code, started)
        return False

    def retry_later(
        self,
        deployment: DeploymentPolicy,
        code: int,
        local: DeploymentState,
        reporter: DeploymentReporter,
        started: datetime,
    ) -> int | None:
        """A retryable exit code with retries left: recorded, scheduled and reported (10034);
        the delay in seconds, or None when the exit is not retried."""
        spec, version = deployment.program, deployment.source_version
        if spec.classify(code) is not Outcome.RETRY or not _retries_left(
            local, version, spec.retry_count
        ):
            return None
        local.record_run(version, Result.RETRYING, code, started)
        delay = retry_delay(spec.retry_delay, local.retries + 1)
        local.schedule_retry(self.ctx.clock() + delay)
        seconds = int(delay.total_seconds())
        props = {"exit_code": code}
        reporter.emit(
            10034,
            spec.exit_code_text(code),
            local.retries,
            spec.retry_count,
            seconds,
            properties=props,
        )
        return seconds

    def interrupted(
        self,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
        started: datetime,
        output: str = "",
        how: str = "SIGTERM",
    ) -> None:
        """A run cut short by the agent's stop: a failed attempt, retried at the next start
        when the rerun rule allows a run after a failure (10072), else final (10073)."""
        version, rerun = deployment.source_version, deployment.rerun
        local.running = None
        if rerun in ("if-failed", "always"):
            local.record_run(version, Result.RETRYING, None, started, f"interrupted ({how})")
            local.schedule_retry(self.ctx.clock())
            reporter.emit(10072, how, output=output)
        else:
            local.record_run(version, Result.INTERRUPTED, None, started, f"interrupted ({how})")
            reporter.emit(10073, how, rerun, output=output)

    def _not_started(
        self,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
        reason: str,
        started: datetime,
    ) -> None:
        """The command could not be started (e.g. not found): a failed attempt."""
        reporter.emit(10007, reason)
        local.record_run(deployment.source_version, Result.NOT_STARTED, None, started, reason)

    def _program_log(self, deployment: DeploymentPolicy) -> Path:
        stamp = self.ctx.clock().strftime("%Y%m%dT%H%M%SZ")
        name = f"{deployment.deployment_id}-v{deployment.source_version}-{stamp}.log"
        return self.ctx.home.program_logs / name


def _retries_left(local: DeploymentState, version: int, retry_count: int) -> bool:
    done = local.retries if local.ran_version == version else 0
    return done < retry_count


def _describe(run: ProgramRun) -> str:
    if run.interrupted:
        return "stopped because the agent was asked to stop"
    if run.start_error:
        return f"could not start: {run.start_error}"
    if run.timed_out:
        return "exceeded its maximum run time and was stopped"
    return f"exited with code {run.exit_code}"
