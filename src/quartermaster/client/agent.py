"""One agent run: refresh policy, act on every deployment that is due, deliver status.

The agent works against a `SiteApi`, so the same code runs behind `qm client run` and in
tests with signed objects and real DPs. Deployment failures become status messages; only
a failure of the agent itself (site unreachable, unusable home) raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from quartermaster.client import cleanup
from quartermaster.client.app_run import AppRunner
from quartermaster.client.cache import ContentCache
from quartermaster.client.content_access import ContentAccess, DownloadPaused
from quartermaster.client.deployment_run import DeploymentRunner, RunContext
from quartermaster.client.detection import Detector
from quartermaster.client.home import ClientHome
from quartermaster.client.local_state import DeploymentState, LocalState
from quartermaster.client.machine_facts import MachineFacts, collect_facts, inventory_digest
from quartermaster.client.peer_server import PeerCache
from quartermaster.client.policy import DeploymentPolicy, Policy
from quartermaster.client.policy_agent import PolicyAgent
from quartermaster.client.scheduling import Action, decide, next_wakeup
from quartermaster.client.site_link import NotApproved, RekeyRequired, SiteApi
from quartermaster.client.status_spool import DeploymentReporter, StatusSpool
from quartermaster.client.timestamps import Clock, format_utc, parse_utc, utcnow
from quartermaster.core.blob_transfer import BlobFetcher, TransferStopped
from quartermaster.core.errors import NotFound, QMError

T = TypeVar("T")


@dataclass
class RunSummary:
    """What a run did, one line per deployment, for the command's output."""

    lines: list[str] = field(default_factory=list)
    delivered: int = 0
    policy_serial: int | None = None
    next_wakeup: datetime | None = None
    poll_after: int | None = None  # the site asked for the next poll within this many seconds


class Agent:
    def __init__(
        self,
        home: ClientHome,
        site: SiteApi,
        *,
        clock: Clock = utcnow,
        facts: MachineFacts | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        peers: PeerCache | None = None,
    ) -> None:
        self.home = home
        self.peers = peers  # serving the cache to the boundary (client/peer_server.py)
        self.site = site
        self.clock = clock
        self.should_stop = should_stop
        self.config = home.load_config()
        home.make_private()
        home.keep_reserve()
        self.facts = facts or collect_facts(home.root, self.config.site_url, self.config.hostname)
        self.log = home.log("policyagent")
        self.spool = StatusSpool(home.spool, clock, home.log("statusagent"))
        self.state = LocalState.load(home.state_path)
        self.cache = ContentCache(home.cache, self.config.cache_limit_bytes)
        self.exec_log = home.log("execmgr")

    def run_once(self, install: str | None = None) -> RunSummary:
        """Poll policy, do all due work (and `install` now if allowed), deliver status."""
        summary = RunSummary()
        try:
            self._rekeyed(self._report_inventory)
            self._report_peer()
            policy = self._refresh_policy()
        except NotApproved as exc:  # keep the spool: it is delivered once the site serves us
            self.log.write(f"the site does not serve this client: {exc.message}")
            summary.lines.append(f"waiting: {exc.message}")
            return summary
        if install and (policy is None or policy.find(install) is None):
            self.spool.deliver(self.site.send_status)
            raise NotFound(
                f"deployment {install} is not in this client's policy",
                "list what the client knows with `qm client status`",
            )
        if policy is not None:
            summary.policy_serial = policy.serial
            self._work(policy, install, summary)
            wakeups = [
                next_wakeup(policy.deployments, self.state.deployments, self.clock()),
                summary.next_wakeup,
            ]
            summary.next_wakeup = min((w for w in wakeups if w is not None), default=None)
        summary.delivered = self.spool.deliver(self.site.send_status)
        summary.poll_after = self.site.poll_after
        return summary

    def _report_inventory(self) -> None:
        """Tell the site when this computer's facts changed: collection rules depend on them."""
        report = self.facts.registration(self.config.properties)
        digest = inventory_digest(report)
        if digest == self.config.inventory_digest:
            return
        changed = self.site.inventory(report)
        self.config.inventory_digest = digest
        self.home.save_config(self.config)
        self.log.write(
            "reported changed facts to the site"
            + ("; its collection membership changed" if changed else "")
        )

    def _report_peer(self) -> None:
        """What this peer holds and may serve; a failure leaves it not serving this run."""
        report = getattr(self.site, "peer_report", None)
        if self.peers is None or report is None:
            return
        try:
            self.peers.report(report, self.config.trusted_keys())
        except QMError as exc:
            self.peers.state.serve = False
            self.log.warning(f"peer report failed, not serving until the next: {exc.message}")

    def _held(self, package_hash: str, blobs: list[str]) -> None:
        """A version is whole in the cache: the site hears it now, so clients of this
        boundary waiting for it stop waiting."""
        if self.peers is not None:
            self.peers.holding(package_hash, blobs)
            self._report_peer()

    def _refresh_policy(self) -> Policy | None:
        agent = PolicyAgent(self.home, self.config, self.site, self.spool, self.clock)
        return self._rekeyed(agent.refresh)

    def _rekeyed(self, call: Callable[[], T]) -> T:
        """The first call of a run to be told to replace the secret (an inventory report or
        the policy poll) stores a new one durably, then is made again with it."""
        try:
            return call()
        except RekeyRequired:
            self.home.write_secret(self.site.rekey())  # write, fsync, rename
            self.log.write("the site asked for a new secret; it was stored and is in use")
            return call()

    def _work(self, policy: Policy, install: str | None, summary: RunSummary) -> None:
        fetcher = BlobFetcher(ssl_context=self.home.ssl_context(self.config))  # pinned CA
        ctx = RunContext(
            self.home,
            self.site,
            self.config.site_code,
            self.config.trusted_keys(),
            self.cache,
            ContentAccess(self.cache, fetcher, self.home.log("cas"), self.should_stop),
            self.spool,
            self.facts,
            self.clock,
            self.should_stop,
            self._checkpoint,
        )
        ctx.content.limit, ctx.content.clock = policy.bandwidth, self.clock
        if self.peers is not None:
            ctx.content.on_verified = self.peers.verified.record
            ctx.content.on_held = self._held
        runner = DeploymentRunner(ctx)
        apps = AppRunner(runner, policy, self.state, Detector())
        resume_at = None
        try:
            with self.spool.deferred():  # one syncfs for the run's notices, not one per message
                self._interrupted_before(policy, runner)
                for deployment in policy.deployments:
                    if self.should_stop():
                        self.log.write("stop requested; remaining deployments wait")
                        break
                    requested = deployment.deployment_id == install
                    before = self.state.get(deployment.deployment_id).last_run
                    try:
                        line = self._consider(deployment, requested, runner, apps)
                    except TransferStopped as exc:
                        self.log.write(f"deployment {deployment.deployment_id}: {exc.message}")
                        summary.lines.append(f"{deployment.deployment_id}: {exc.message}")
                        if isinstance(exc, DownloadPaused):  # wake when the schedule allows
                            resume_at = policy.bandwidth.next_change(self.clock())
                        break
                    summary.lines.append(line)
                    local = self.state.get(deployment.deployment_id)
                    if local.last_run != before:
                        self.spool.flush()  # the messages before the state that records them
                        self.state.save()  # a program ran: its attempt is on disk at once
                    cleanup.after_run(
                        self.home.work, deployment.deployment_id, local.result, self.exec_log
                    )
        finally:
            self.spool.flush()
            self.state.save()  # evaluations and notices: once per run
            fetcher.close()
            cleanup.sweep(
                self.home.work,
                self.home.program_logs,
                self.exec_log,
                keep_failed_days=self.config.failed_work_keep_days,
            )
        wakeups = [self._reevaluation(policy, apps), resume_at]
        summary.next_wakeup = min((w for w in wakeups if w is not None), default=None)

    def _checkpoint(self) -> None:
        """Spooled messages, then the state that refers to them, durable now."""
        self.spool.flush()
        self.state.save()

    def _interrupted_before(self, policy: Policy, runner: DeploymentRunner) -> None:
        """A program still marked running was cut short when the agent was killed (or the
        computer lost power): recorded and reported now, and retried per its rerun rule."""
        for deployment in policy.deployments:
            local = self.state.get(deployment.deployment_id)
            if local.running is None:
                continue
            started = parse_utc(local.running)
            self.log.warning(
                f"deployment {deployment.deployment_id}: its program was running when the "
                "agent stopped"
            )
            reporter = DeploymentReporter(self.spool, deployment)
            runner.interrupted(deployment, local, reporter, started, how="agent killed")
        self._checkpoint()

    def _reevaluation(self, policy: Policy, apps: AppRunner) -> datetime | None:
        """The earliest moment an application deployment is due for re-evaluation."""
        times = [
            apps.reevaluate_at(d, self.state.get(d.deployment_id))
            for d in policy.deployments
            if d.app_id
        ]
        return min((t for t in times if t is not None), default=None)

    def _consider(
        self,
        deployment: DeploymentPolicy,
        requested: bool,
        runner: DeploymentRunner,
        apps: AppRunner,
    ) -> str:
        local = self.state.get(deployment.deployment_id)
        reporter = DeploymentReporter(self.spool, deployment)
        version = deployment.source_version
        if local.first_notice(f"10002:{version}"):
            reporter.emit(10002)
        superseded_by = apps.superseded_by(deployment) if deployment.app_id else ""
        if superseded_by:
            return (
                f"{deployment.deployment_id}: {apps.superseded(deployment, local, superseded_by)}"
            )
        decision = decide(deployment, local, self.clock(), requested)
        self.log.write(
            f"deployment {deployment.deployment_id} version {version}: "
            f"{decision.action}: {decision.reason}"
        )
        if decision.action is Action.AVAILABLE and local.first_notice(f"10003:{version}"):
            deadline = deployment.deadline
            reporter.emit(10003, format_utc(deadline) if deadline else "no deadline set")
        elif decision.action is Action.EXPIRED and local.first_notice("10057"):
            expires = deployment.expires
            reporter.emit(10057, format_utc(expires) if expires else "")
        elif decision.action is Action.WAIT_WINDOW:
            opens = decision.until
            when = format_utc(opens) if opens else "never (no window opens again)"
            if local.first_notice(f"10060:{version}:{when}"):
                reporter.emit(10060, when)
        elif decision.action is Action.RUN and deployment.app_id:
            return f"{deployment.deployment_id}: {apps.enforce(deployment, local)}"
        elif decision.action is Action.RUN:
            runner.install(deployment, local)
            return f"{deployment.deployment_id}: ran: {_result(local)}"
        if deployment.app_id and self._evaluable(deployment, decision.action):
            due = deployment.deadline is not None and self.clock() >= deployment.deadline
            return f"{deployment.deployment_id}: {apps.evaluate(deployment, local, due)}"
        return f"{deployment.deployment_id}: {decision.action}: {decision.reason}"

    def _evaluable(self, deployment: DeploymentPolicy, action: Action) -> bool:
        """Re-evaluation applies to an active application deployment that is available."""
        available = deployment.available is None or self.clock() >= deployment.available
        return (
            deployment.state == "active"
            and available
            and action in (Action.SKIP, Action.AVAILABLE, Action.WAIT)
        )


def _result(local: DeploymentState) -> str:
    text = local.result
    if local.exit_code is not None:
        text += f" (exit code {local.exit_code})"
    if local.reason:
        text += f": {local.reason}"
    if local.next_retry:
        text += f", next retry at {local.next_retry}"
    return text
