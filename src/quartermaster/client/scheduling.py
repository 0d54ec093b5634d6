"""Whether a deployment is due on this client: `core.schedule.decide`, fed from policy and memory.

The rules (times, maintenance windows, rerun, clock tolerance) are those of
`quartermaster.core.schedule`, documented in docs/deployments.md; this module only adds
what belongs to one client's memory:

- a retry scheduled by a retryable exit code belongs to the attempt that is still going on:
  it runs when due (a time of this client's clock, so without tolerance), whatever the rerun
  rule says, unless the deployment was paused, cancelled, expired or has a new source version;
- a run stopped before the program started (requirements, manifest, content) is not an
  attempt, so it does not count for the rerun rule and is tried again at the next agent run.

`decide` is pure (no clock, no I/O): the agent passes its own `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from quartermaster.client.local_state import DeploymentState
from quartermaster.client.policy import DeploymentPolicy
from quartermaster.client.timestamps import parse_optional
from quartermaster.core import schedule
from quartermaster.core.backoff import Backoff
from quartermaster.core.schedule import CLOCK_TOLERANCE, DeploymentSchedule, LastRun, Why

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Action(StrEnum):
    SKIP = "skip"
    AVAILABLE = "available"
    EXPIRED = "expired"
    WAIT = "wait"  # a retry is scheduled later
    WAIT_WINDOW = "wait_window"  # mandatory, held until a maintenance window opens
    RUN = "run"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    until: datetime | None = None  # the scheduled instant that changes the answer
    early: timedelta = CLOCK_TOLERANCE  # how much before `until` the answer may change

    @property
    def wake_at(self) -> datetime | None:
        """When to decide again."""
        return None if self.until is None else self.until - self.early


def decide(
    deployment: DeploymentPolicy, local: DeploymentState, now: datetime, requested: bool = False
) -> Decision:
    version = deployment.source_version
    expired = deployment.expires is not None and now >= deployment.expires
    if deployment.state == "active" and not expired and local.retry_pending(version):
        due = local.next_retry_time
        if due is not None and now < due:  # the client's own time: no tolerance
            return Decision(Action.WAIT, f"retry {local.retries} is due later", due, timedelta())
        return Decision(Action.RUN, f"retry {local.retries} is due")
    found = schedule.decide(
        _schedule(deployment),
        _last_run(local),
        source_version=version,
        requested=requested,
        windows=deployment.maintenance_windows,
        now=now,
    )
    return Decision(
        _ACTIONS[found.action, found.why == Why.MAINTENANCE_WINDOW], found.detail, found.until
    )


_ACTIONS = {
    (schedule.Action.RUN, False): Action.RUN,
    (schedule.Action.AVAILABLE, False): Action.AVAILABLE,
    (schedule.Action.EXPIRED, False): Action.EXPIRED,
    (schedule.Action.SKIP, False): Action.SKIP,
    (schedule.Action.WAIT, False): Action.SKIP,  # not available yet: nothing to do or tell
    (schedule.Action.WAIT, True): Action.WAIT_WINDOW,
}


def _schedule(deployment: DeploymentPolicy) -> DeploymentSchedule:
    return DeploymentSchedule(
        available=deployment.available or _EPOCH,
        deadline=deployment.deadline,
        expires=deployment.expires,
        rerun=schedule.parse_rerun(deployment.rerun),
        state=deployment.state,
        override_maintenance=deployment.override_maintenance,
    )


def _last_run(local: DeploymentState) -> LastRun | None:
    """The last attempt (a program run), or None if the program never started here."""
    started = parse_optional(local.last_run)
    if local.ran_version is None or started is None:
        return None
    result = (
        schedule.Result.SUCCEEDED if local.ran_result == "succeeded" else schedule.Result.FAILED
    )
    return LastRun(result, local.ran_version, started)


def retry_delay(base_seconds: int, retry_number: int) -> timedelta:
    """Retry n (1-based) waits base * 2**(n-1): the delay doubles each time."""
    return timedelta(seconds=Backoff(first=base_seconds).delay(retry_number))


def next_wakeup(
    deployments: tuple[DeploymentPolicy, ...], states: dict[str, DeploymentState], now: datetime
) -> datetime | None:
    """The earliest future moment a decision may change (a retry, a deadline, a window)."""
    times: list[datetime] = []
    for deployment in deployments:
        local = states.get(deployment.deployment_id, DeploymentState())
        wake = decide(deployment, local, now).wake_at
        if wake is not None and wake > now:
            times.append(wake)
    return min(times, default=None)
