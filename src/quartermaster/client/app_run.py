"""Deployments of applications: detect first, act only when detection says so, detect again.

Install: requirements → detection (nothing downloaded if already installed: compliant) →
dependencies, in order, each detected and installed the same way (one that fails stops
everything with 5004) → superseded applications to uninstall first (5008) → content and
the install program → detection again: present is success (1000), absent is "installed
but not detected" (5100) whatever the exit code said. Uninstall runs only if detection
says present, and succeeds only if it then says absent (1000, else 5101).

Re-evaluation: every agent run detects every application deployment that is available;
compliance is reported when it changed or once per the application's cycle (1001). A
required application that was installed and is gone is drift: reported (1100) and
installed again; an available one is reported only (1101).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from quartermaster.client.deployment_run import DeploymentRunner
from quartermaster.client.detection import DetectionResult, Detector, detection_properties
from quartermaster.client.execution import exit_report, run_program
from quartermaster.client.local_state import DeploymentState, LocalState, Result
from quartermaster.client.policy import ApplicationPolicy, DeploymentPolicy, Policy
from quartermaster.client.requirements import unmet_requirement
from quartermaster.client.status_spool import DeploymentReporter
from quartermaster.client.timestamps import format_utc, parse_optional
from quartermaster.core.manifest import Manifest
from quartermaster.core.program import Outcome, ProgramSpec

MAX_DEPTH = 16  # dependencies of dependencies; the site refuses cycles, this is a guard


@dataclass(frozen=True)
class Step:
    ok: bool
    reason: str = ""
    exit_code: int | None = None
    retrying: bool = False  # a retryable exit code: the next attempt is scheduled


class AppRunner:
    def __init__(
        self, runner: DeploymentRunner, policy: Policy, state: LocalState, detector: Detector
    ) -> None:
        self.runner = runner
        self.ctx = runner.ctx
        self.apps = policy.applications
        self.replaced_by = _replacements(policy)
        self.state = state
        self.detector = detector
        self.log = self.ctx.home.log("appenforce")

    # ------------------------------------------------------------------ entry points

    def enforce(self, deployment: DeploymentPolicy, local: DeploymentState) -> str:
        """Make the client comply with the deployment (a due run)."""
        app = self.apps[deployment.app_id]
        reporter = DeploymentReporter(self.ctx.spool, deployment)
        if not self._requirements_met(app, deployment, local, reporter):
            return f"requirements not met: {local.reason}"
        found = self._detect(app, deployment)
        if found.result == "error":
            return self._detection_failed(app, deployment, local, reporter, found)
        if self._compliant(deployment, found):
            self._report_compliance(app, deployment, local, reporter, found)
            return f"compliant: {found.summary()}"
        if deployment.purpose == "install" and local.detected:
            reporter.emit(1100, _name(app), found.summary(), properties=_props(app, found))
        return self._change(app, deployment, local, reporter)

    def evaluate(self, deployment: DeploymentPolicy, local: DeploymentState, due: bool) -> str:
        """Re-evaluation of a deployment the schedule does not run now; `due` says whether it
        is required (its deadline passed) so that drift is repaired."""
        app = self.apps[deployment.app_id]
        reporter = DeploymentReporter(self.ctx.spool, deployment)
        found = self._detect(app, deployment)
        if found.result == "error":
            return self._detection_failed(app, deployment, local, reporter, found)
        if self._compliant(deployment, found):
            self._report_compliance(app, deployment, local, reporter, found)
            return f"compliant: {found.summary()}"
        was_installed = local.detected is True and deployment.purpose == "install"
        if was_installed and due:
            reporter.emit(1100, _name(app), found.summary(), properties=_props(app, found))
            return self._change(app, deployment, local, reporter)
        if was_installed:
            reporter.emit(1101, _name(app), found.summary(), properties=_props(app, found))
        self._remember(app, deployment, local, found)
        return f"not compliant: {found.summary()}"

    def superseded_by(self, deployment: DeploymentPolicy) -> str:
        """The application that replaces this deployment's application through a required,
        active install deployment to this client, or "": the old deployment must not put
        back what the new one replaced."""
        return (
            self.replaced_by.get(deployment.app_id, "") if deployment.purpose == "install" else ""
        )

    def superseded(self, deployment: DeploymentPolicy, local: DeploymentState, by: str) -> str:
        """Detected and reported (1102, once per change), never enforced."""
        app = self.apps[deployment.app_id]
        found = self._detect(app, deployment)
        self._remember(app, deployment, local, found)
        if local.first_notice(f"1102:{app.revision}:{by}:{found.detected}"):
            reporter = DeploymentReporter(self.ctx.spool, deployment)
            reporter.emit(1102, _name(app), by, found.summary(), properties=_props(app, found))
        return f"superseded by {by}: not enforced ({found.summary()})"

    def reevaluate_at(
        self, deployment: DeploymentPolicy, local: DeploymentState
    ) -> datetime | None:
        evaluated = parse_optional(local.evaluated)
        app = self.apps.get(deployment.app_id)
        if evaluated is None or app is None:
            return None
        return evaluated + timedelta(seconds=app.reevaluate)

    # ------------------------------------------------------------------ detection

    def _detect(self, app: ApplicationPolicy, deployment: DeploymentPolicy) -> DetectionResult:
        synth = _as_deployment(deployment, app, app.install)
        found = self.detector.evaluate(app.detection, lambda: self._manifest(synth))
        self.log.write(f"{app.app_id} revision {app.revision}: {found.result}: {found.summary()}")
        self.state.applications[app.app_id] = {  # `qm client status` shows each application
            "name": app.name,
            "revision": app.revision,
            "detected": found.detected,
            "result": found.result,
            "evaluated": format_utc(self.ctx.clock()),
            "evidence": found.evidence_list(),
        }
        return found

    def _manifest(self, synth: DeploymentPolicy) -> Manifest | None:
        scratch = DeploymentState()
        reporter = DeploymentReporter(self.ctx.spool, synth)
        return self.runner._manifest(synth, scratch, reporter)

    def _compliant(self, deployment: DeploymentPolicy, found: DetectionResult) -> bool:
        return found.detected == (deployment.purpose == "install")

    def _remember(
        self,
        app: ApplicationPolicy,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        found: DetectionResult,
    ) -> None:
        local.detected, local.evaluated = found.detected, format_utc(self.ctx.clock())

    def _report_compliance(
        self,
        app: ApplicationPolicy,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
        found: DetectionResult,
    ) -> None:
        """1001 when the state changed, or once per re-evaluation cycle."""
        reported = parse_optional(local.reported)
        now = self.ctx.clock()
        stale = reported is None or now - reported >= timedelta(seconds=app.reevaluate)
        changed = local.detected != found.detected or local.result not in _COMPLIANT_RESULTS
        self._remember(app, deployment, local, found)
        local.record_step(deployment.source_version, Result.COMPLIANT, found.summary())
        if stale or changed:
            state = "installed" if found.detected else "not installed"
            reporter.emit(1001, _name(app), state, properties=_props(app, found))
            local.reported = format_utc(now)

    def _detection_failed(
        self,
        app: ApplicationPolicy,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
        found: DetectionResult,
    ) -> str:
        self._remember(app, deployment, local, found)
        reporter.emit(5001, _name(app), found.summary(), properties=_props(app, found))
        local.record_step(deployment.source_version, Result.FAILED, found.summary())
        return f"detection failed: {found.summary()}"

    def _requirements_met(
        self,
        app: ApplicationPolicy,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
    ) -> bool:
        reason = deployment.requirements_unmet or unmet_requirement(
            app.install.requirements, self.ctx.facts
        )
        if not reason:
            return True
        if local.first_notice(f"3000:{app.revision}:{reason}"):
            reporter.emit(3000, _name(app), reason)
        local.record_step(deployment.source_version, Result.REQUIREMENTS_NOT_MET, reason)
        return False

    # ------------------------------------------------------------------ changing the computer

    def _change(
        self,
        app: ApplicationPolicy,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        reporter: DeploymentReporter,
    ) -> str:
        started = self.ctx.clock()
        if deployment.purpose == "install":
            blocked = self._prerequisites(app, deployment, reporter)
            if blocked:
                local.record_run(deployment.source_version, Result.FAILED, None, started, blocked)
                return f"failed: {blocked}"
            spec: ProgramSpec | None = app.install
        else:
            spec = app.uninstall
        step = (
            self._run(app, spec, deployment, local, retry=True)
            if spec
            else Step(False, "no program")
        )
        if step.retrying:
            return f"retry scheduled: {step.reason}"
        if not step.ok:
            local.record_run(
                deployment.source_version, Result.FAILED, step.exit_code, started, step.reason
            )
            return f"failed: {step.reason}"
        after = self._detect(app, deployment)
        self._remember(app, deployment, local, after)
        props = {**_props(app, after), "exit_code": step.exit_code}
        if not self._compliant(deployment, after):
            message = 5100 if deployment.purpose == "install" else 5101
            reporter.emit(message, _name(app), step.exit_code, after.summary(), properties=props)
            why = "installed but not detected" if message == 5100 else "still detected"
            local.record_run(deployment.source_version, Result.FAILED, step.exit_code, started, why)
            return f"failed: {why}: {after.summary()}"
        verb = deployment.purpose
        state = "installed" if after.detected else "not installed"
        reporter.emit(1000, _name(app), verb, state, properties=props)
        local.record_run(deployment.source_version, Result.SUCCEEDED, step.exit_code, started)
        local.reported = format_utc(self.ctx.clock())
        return f"{verb} succeeded: {after.summary()}"

    def _prerequisites(
        self, app: ApplicationPolicy, deployment: DeploymentPolicy, reporter: DeploymentReporter
    ) -> str:
        """Dependencies installed, superseded applications removed; why not, or ""."""
        for dependency in app.depends:
            step = self._ensure(dependency, deployment, 1)
            if not step.ok:
                reporter.emit(5004, _name(app), dependency, step.reason)
                return f"dependency {dependency}: {step.reason}"
        for old, mode in app.supersedes:
            if mode != "uninstall":
                continue  # upgrade: the new install replaces the old one in place
            step = self._remove(old, deployment)
            if not step.ok:
                reporter.emit(5008, _name(app), old, step.reason)
                return f"superseded {old}: {step.reason}"
        return ""

    def _ensure(self, app_id: str, deployment: DeploymentPolicy, depth: int) -> Step:
        """A dependency present: detected, or installed (its own dependencies first)."""
        app = self.apps[app_id]
        if depth > MAX_DEPTH:
            return Step(False, "dependencies nest too deep")
        if self._detect(app, deployment).detected:
            return Step(True)
        for dependency in app.depends:
            step = self._ensure(dependency, deployment, depth + 1)
            if not step.ok:
                return Step(False, f"its dependency {dependency}: {step.reason}")
        step = self._run(app, app.install, deployment, DeploymentState())
        if not step.ok:
            return step
        after = self._detect(app, deployment)
        if not after.detected:
            return Step(False, f"installed but not detected: {after.summary()}")
        return Step(True)

    def _remove(self, app_id: str, deployment: DeploymentPolicy) -> Step:
        app = self.apps[app_id]
        if not self._detect(app, deployment).detected:
            return Step(True)
        if app.uninstall is None:
            return Step(False, "it has no uninstall program")
        step = self._run(app, app.uninstall, deployment, DeploymentState())
        if not step.ok:
            return step
        after = self._detect(app, deployment)
        return Step(True) if not after.detected else Step(False, "still detected after uninstall")

    def _run(
        self,
        app: ApplicationPolicy,
        spec: ProgramSpec,
        deployment: DeploymentPolicy,
        local: DeploymentState,
        retry: bool = False,
    ) -> Step:
        """Content (verified) and one run of `spec`; success means a success or restart
        exit code (detection then decides). With `retry`, a retryable exit code schedules
        the next attempt by the program's retry rule, as for a package deployment."""
        synth = _as_deployment(deployment, app, spec)
        reporter = DeploymentReporter(self.ctx.spool, synth)
        manifest = self.runner._manifest(synth, local, reporter)
        if manifest is None:
            return Step(False, local.reason or "the manifest was refused")
        try:
            folder = self.runner._prepare(synth, manifest, local, reporter)
        finally:
            self.ctx.cache.make_room(0)
        if folder is None:
            return Step(False, local.reason or "content unavailable")
        reporter.emit(10005, spec.command)
        started = self.ctx.clock()
        local.running = format_utc(started)  # still set at the next start: we were killed
        self.ctx.checkpoint()  # what was reported, and the mark, durable before the program
        run = run_program(
            spec,
            folder,
            self.runner._program_log(synth),
            _environment(synth, app),
            self.ctx.should_stop,
        )
        local.running = None
        self.detector.forget()  # whatever it did, detection must look again
        if run.interrupted:
            self.runner.interrupted(synth, local, reporter, started, run.output)
            return Step(False, "interrupted because the agent stopped")
        if run.start_error:
            reporter.emit(10007, run.start_error)
            return Step(False, f"could not start: {run.start_error}")
        if run.timed_out or run.exit_code is None:
            reporter.emit(10070, spec.max_runtime, output=run.output)
            return Step(False, f"exceeded {spec.max_runtime} seconds")
        if spec.classify(run.exit_code) in (Outcome.SUCCESS, Outcome.SUCCESS_REBOOT):
            return Step(True, exit_code=run.exit_code)
        delay = (
            self.runner.retry_later(synth, run.exit_code, local, reporter, started)
            if retry
            else None
        )
        if delay is not None:
            why = f"{spec.name} exited {run.exit_code}, retry in {delay} s"
            return Step(False, why, run.exit_code, retrying=True)
        report = exit_report(spec, run.exit_code)
        reporter.emit(
            report.message_id,
            *report.extra,
            properties={"exit_code": run.exit_code},
            output=run.output if report.result == Result.FAILED else "",
        )
        return Step(False, f"{spec.name} exited {run.exit_code}", run.exit_code)


def _replacements(policy: Policy) -> dict[str, str]:
    """{superseded application: the application replacing it} over the required, active
    install deployments of the policy."""
    found: dict[str, str] = {}
    for deployment in policy.deployments:
        app = policy.applications.get(deployment.app_id) if deployment.app_id else None
        required = deployment.deadline is not None and deployment.state == "active"
        if app is not None and deployment.purpose == "install" and required:
            found.update((old, app.app_id) for old, _ in app.supersedes)
    return found


_COMPLIANT_RESULTS = frozenset({Result.COMPLIANT, Result.SUCCEEDED})


def _as_deployment(
    deployment: DeploymentPolicy, app: ApplicationPolicy, spec: ProgramSpec
) -> DeploymentPolicy:
    """The deployment as seen from one of its applications (itself, a dependency, or one it
    supersedes): that application's package version and program, the same deployment ID."""
    return replace(
        deployment,
        package_id=app.package_id,
        package_name=app.package_name,
        source_version=app.source_version,
        package_hash=app.package_hash,
        program=spec,
    )


def _environment(deployment: DeploymentPolicy, app: ApplicationPolicy) -> dict[str, str]:
    return {
        "QM_DEPLOYMENT_ID": deployment.deployment_id,
        "QM_PACKAGE_ID": deployment.package_id,
        "QM_SOURCE_VERSION": str(deployment.source_version),
        "QM_PROGRAM": deployment.program.name,
        "QM_APPLICATION_ID": app.app_id,
        "QM_APPLICATION_REVISION": str(app.revision),
    }


def _name(app: ApplicationPolicy) -> str:
    return f"{app.app_id} ({app.name}, revision {app.revision})"


def _props(app: ApplicationPolicy, found: DetectionResult) -> dict[str, object]:
    return {"app_id": app.app_id, "revision": app.revision, **detection_properties(found)}
