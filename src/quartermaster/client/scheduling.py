"""Whether a deployment is due: the one function that decides, given policy, memory and `now`.

`decide` is pure (no clock, no I/O) so that maintenance windows and phased rollouts can later
replace its internals without touching the agent. The rules, in order:

1. A deployment that is not `active` (paused, cancelled) is skipped.
2. Past `expires`: EXPIRED (reported once), unless the program already succeeded at this
   source version.
3. A retry scheduled by a retryable exit code runs when due, whatever `rerun` says.
4. Before `available`: skipped, even when asked.
5. Not mandatory yet (no deadline, or deadline in the future) and not asked for: AVAILABLE.
6. Mandatory, or asked for with `qm client run --install`: RUN if the program never ran,
   otherwise as `rerun` says ("new version" = the last run was of an older source version;
   "asked" = --install):

   | rerun        | new version             | same version, automatic | same version, asked |
   |--------------|-------------------------|-------------------------|---------------------|
   | never        | no                      | no                      | no                  |
   | always       | yes                     | no                      | yes                 |
   | if-failed    | yes                     | if the last run failed  | if it failed        |
   | if-succeeded | if the last run succeeded | no                    | if it succeeded     |

   if-failed is the default: a failed mandatory program runs again at every agent run until
   it succeeds. Runs stopped before the program started (requirements, content) are not
   runs; they are tried again at every agent run.
7. A mandatory run (not one a user asked for) waits for a maintenance window of the client's
   collections unless the deployment may override them: WAIT_WINDOW until the next one opens
   (`core.schedule.next_open`; no windows at all means no restriction). The content is
   fetched when the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from quartermaster.client.local_state import DeploymentState
from quartermaster.client.policy import DeploymentPolicy
from quartermaster.core.schedule import is_open, next_open


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
    not_before: datetime | None = None  # when a WAIT or an AVAILABLE may change


def decide(deployment: DeploymentPolicy, local: DeploymentState, now: datetime,
           requested: bool = False) -> Decision:
    version = deployment.source_version
    if deployment.state != "active":
        return Decision(Action.SKIP, f"the deployment is {deployment.state}")
    if deployment.expires is not None and deployment.expires <= now:
        if local.succeeded_at(version):
            return Decision(Action.SKIP, "expired after the program succeeded")
        return Decision(Action.EXPIRED, "the deployment expired")
    if local.retry_pending(version):
        due = local.next_retry_time
        if due is not None and due > now:
            return Decision(Action.WAIT, f"retry {local.retries} is due later", due)
        return Decision(Action.RUN, f"retry {local.retries} is due")
    if deployment.available is not None and deployment.available > now:
        return Decision(Action.SKIP, "not available yet", deployment.available)
    mandatory = deployment.deadline is not None and deployment.deadline <= now
    if not mandatory and not requested:
        return Decision(Action.AVAILABLE, "available, not mandatory yet", deployment.deadline)
    allowed, reason = _rerun_allows(deployment, local, requested)
    if not allowed:
        return Decision(Action.SKIP, reason)
    held = not requested and not deployment.override_maintenance
    if held and not is_open(deployment.maintenance_windows, now):
        opens = next_open(deployment.maintenance_windows, now)
        return Decision(Action.WAIT_WINDOW, "outside every maintenance window", opens)
    return Decision(Action.RUN, reason)


def _rerun_allows(deployment: DeploymentPolicy, local: DeploymentState,
                  requested: bool) -> tuple[bool, str]:
    if local.ran_version is None:
        return True, "the program has not run yet"
    rerun = deployment.rerun
    succeeded = local.ran_result == "succeeded"
    new_version = local.ran_version != deployment.source_version
    if rerun == "never":
        return False, "rerun is never and the program already ran"
    if rerun == "always":
        if new_version or requested:
            return True, "rerun is always"
        return False, "already ran at this source version"
    if rerun == "if-succeeded":
        if succeeded and (new_version or requested):
            return True, "rerun if-succeeded and the last run succeeded"
        return False, "rerun is if-succeeded" + ("" if succeeded else " and the last run failed")
    if new_version or not succeeded:
        return True, "not yet succeeded at this source version"
    return False, "already succeeded at this source version"


def retry_delay(base_seconds: int, retry_number: int) -> timedelta:
    """Retry n (1-based) waits base * 2**(n-1): the delay doubles each time."""
    return timedelta(seconds=base_seconds * 2 ** (retry_number - 1))


def next_wakeup(deployments: tuple[DeploymentPolicy, ...], states: dict[str, DeploymentState],
                now: datetime) -> datetime | None:
    """The earliest future moment a decision may change (a retry, a deadline, availability)."""
    times: list[datetime] = []
    for deployment in deployments:
        local = states.get(deployment.deployment_id, DeploymentState())
        decision = decide(deployment, local, now)
        if decision.not_before is not None and decision.not_before > now:
            times.append(decision.not_before)
    return min(times, default=None)
