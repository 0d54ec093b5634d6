"""Phased rollout: which clients get a deployment now, and when the rollout stops itself.

``--phases 5%,25%,100%`` is cumulative: phase 1 is 5 % of the collection, phase 2 the next
20 %, phase 3 the rest. A client's phase comes from a stable hash of the deployment ID and
its client ID, so it never changes, whatever other clients join or leave; in a small
collection a phase may hold no client, and an empty phase counts as complete.

Phase 1 is released at once. Phase N+1 is released when phase N reached the success
threshold (succeeded / targeted in phase N, counted in whole percent). A released phase
stays released. The rollout pauses by itself when the error rate of the released clients
(failed / targeted, over all released phases) is above the error threshold; while paused
no new phase is released, and clients treat the deployment as paused.

Resuming (``qm deploy resume``) accepts the failures counted so far: they no longer count
against the error threshold, and a phase's success rate is taken over its clients that
were not accepted failures. The rollout then continues where it stopped; new failures
pause it again. Clients whose requirements are not met are not counted as targeted.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from quartermaster.core.errors import InvalidInput

MAX_PHASES = 10
DEFAULT_SUCCESS_THRESHOLD = 95
DEFAULT_ERROR_THRESHOLD = 5
_BUCKETS = 10_000  # a client lands in one of 10,000 buckets: 0.01 % steps


@dataclass(frozen=True)
class PhasePlan:
    """Cumulative percentages (last is 100) and thresholds in whole percent."""

    phases: tuple[int, ...]
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    error_threshold: int = DEFAULT_ERROR_THRESHOLD

    def __post_init__(self) -> None:
        _check_phases(self.phases)
        for name, value in (("success", self.success_threshold), ("error", self.error_threshold)):
            if not 0 <= value <= 100:
                raise InvalidInput(
                    f"the {name} threshold {value} is not a percentage",
                    f"give --{name}-threshold between 0 and 100",
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": list(self.phases),
            "success_threshold": self.success_threshold,
            "error_threshold": self.error_threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhasePlan:
        return cls(
            tuple(int(p) for p in data["phases"]),
            int(data["success_threshold"]),
            int(data["error_threshold"]),
        )


def parse_phases(
    text: str,
    success_threshold: int | str = DEFAULT_SUCCESS_THRESHOLD,
    error_threshold: int | str = DEFAULT_ERROR_THRESHOLD,
) -> PhasePlan:
    """``5%,25%,100%`` and the thresholds, as given on the command line."""
    parts = [p.strip().removesuffix("%").strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise InvalidInput(
            f"phases {text!r} are not a list of percentages", "e.g. --phases 5%,25%,100%"
        )
    return PhasePlan(
        tuple(int(p) for p in parts),
        _percent(success_threshold, "success"),
        _percent(error_threshold, "error"),
    )


def _percent(value: int | str, name: str) -> int:
    text = str(value).strip().removesuffix("%").strip()
    if not text.isdigit():
        raise InvalidInput(
            f"the {name} threshold {value!r} is not a whole percentage",
            f"give --{name}-threshold as a whole number from 0 to 100",
        )
    return int(text)


def _check_phases(phases: tuple[int, ...]) -> None:
    hint = "cumulative, strictly increasing percentages ending at 100, e.g. 5%,25%,100%"
    if not phases or len(phases) > MAX_PHASES:
        raise InvalidInput(f"a rollout has 1 to {MAX_PHASES} phases", hint)
    if any(p <= 0 for p in phases) or any(b <= a for a, b in zip(phases, phases[1:], strict=False)):
        raise InvalidInput(f"phases {_show(phases)} do not grow", hint)
    if phases[-1] != 100:
        raise InvalidInput(
            f"phases {_show(phases)} do not reach 100%",
            "the last phase must be 100% so every client is reached",
        )


def _show(phases: tuple[int, ...]) -> str:
    return ",".join(f"{p}%" for p in phases)


def assign_phase(deployment_id: str, client_id: str, plan: PhasePlan) -> int:
    """The client's phase (1-based); depends on nothing but the two IDs and the plan."""
    bucket = _bucket(f"{deployment_id.upper()}\n".encode(), client_id)
    for number, percent in enumerate(plan.phases, start=1):
        if bucket < percent * _BUCKETS // 100:
            return number
    return len(plan.phases)


def phase_sizes(deployment_id: str, client_ids: Iterable[str], plan: PhasePlan) -> list[int]:
    """How many of `client_ids` each phase holds (what assign_phase gives each, counted
    with one hash per client and nothing else: a deploy summary counts 100,000 members)."""
    prefix = f"{deployment_id.upper()}\n".encode()
    bounds = [percent * _BUCKETS // 100 for percent in plan.phases]
    sizes = [0] * len(bounds)
    for client_id in client_ids:
        sizes[min(bisect.bisect_right(bounds, _bucket(prefix, client_id)), len(bounds) - 1)] += 1
    return sizes


def _bucket(prefix: bytes, client_id: str) -> int:
    digest = hashlib.sha256(prefix + client_id.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


@dataclass(frozen=True)
class PhaseCounts:
    targeted: int = 0
    succeeded: int = 0
    failed: int = 0


def count_phases(
    plan: PhasePlan, deployment_id: str, client_states: Iterable[tuple[str, str]]
) -> dict[int, PhaseCounts]:
    """Per-phase counts from (client_id, state) pairs of the deployment's roll-up."""
    totals = {n: [0, 0, 0] for n in range(1, len(plan.phases) + 1)}
    for client_id, state in client_states:
        if state == "requirements_not_met":
            continue
        row = totals[assign_phase(deployment_id, client_id, plan)]
        row[0] += 1
        row[1] += state == "succeeded"
        row[2] += state == "failed"
    return {n: PhaseCounts(*row) for n, row in totals.items()}


@dataclass(frozen=True)
class RolloutControl:
    """What the site stores for a phased deployment between evaluations."""

    state: str = "active"  # active | paused | cancelled: the deployment's state
    released: int = 1  # phases released so far; store RolloutState.released back here
    accepted_failures: Mapping[int, int] = field(default_factory=dict)  # phase -> count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (phase numbers become string keys)."""
        return {
            "state": self.state,
            "released": self.released,
            "accepted_failures": {str(k): v for k, v in self.accepted_failures.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutControl:
        accepted = {int(k): int(v) for k, v in (data.get("accepted_failures") or {}).items()}
        return cls(str(data.get("state", "active")), int(data.get("released", 1)), accepted)


@dataclass(frozen=True)
class RolloutState:
    released: int  # clients in phases 1..released get the deployment
    paused: bool  # clients treat the deployment as paused
    auto_paused: bool  # this evaluation crossed the error threshold: store state "paused"
    cancelled: bool
    reason: str
    failed: int  # failures of released clients not accepted on resume
    targeted: int  # released clients, less accepted failures

    def control(self, previous: RolloutControl) -> RolloutControl:
        """The control to store after this evaluation: releases and pauses stick."""
        state = "paused" if self.auto_paused else previous.state
        return replace(previous, state=state, released=self.released)


def rollout_state(
    plan: PhasePlan, counts: Mapping[int, PhaseCounts], control: RolloutControl
) -> RolloutState:
    """Which phases are released and whether the rollout stops, with the reason."""
    released = min(max(control.released, 1), len(plan.phases))
    failed, targeted = _error_counts(counts, control, released)
    if control.state == "cancelled":
        return RolloutState(
            released, True, False, True, "cancelled by an administrator", failed, targeted
        )
    if control.state == "paused":
        return RolloutState(
            released, True, False, False, _paused_reason(plan, failed, targeted), failed, targeted
        )
    if _above(failed, targeted, plan.error_threshold):
        return RolloutState(
            released,
            True,
            True,
            False,
            f"paused automatically: {_rate(failed, targeted)} of released "
            f"clients failed, above the {plan.error_threshold}% error "
            "threshold",
            failed,
            targeted,
        )
    while released < len(plan.phases) and _complete(plan, counts, control, released):
        released += 1
    return RolloutState(
        released, False, False, False, _progress(plan, counts, control, released), failed, targeted
    )


def resume(
    plan: PhasePlan, counts: Mapping[int, PhaseCounts], control: RolloutControl
) -> RolloutControl:
    """The control after ``qm deploy resume``: active, accepting the failures so far."""
    if control.state == "cancelled":
        raise InvalidInput("a cancelled deployment cannot be resumed", "create a new deployment")
    accepted = {n: counts.get(n, PhaseCounts()).failed for n in range(1, control.released + 1)}
    return replace(control, state="active", accepted_failures=accepted)


def _error_counts(
    counts: Mapping[int, PhaseCounts], control: RolloutControl, released: int
) -> tuple[int, int]:
    failed = targeted = 0
    for number in range(1, released + 1):
        phase = counts.get(number, PhaseCounts())
        accepted = min(control.accepted_failures.get(number, 0), phase.targeted)
        failed += max(phase.failed - accepted, 0)
        targeted += phase.targeted - accepted
    return failed, targeted


def _complete(
    plan: PhasePlan, counts: Mapping[int, PhaseCounts], control: RolloutControl, number: int
) -> bool:
    phase = counts.get(number, PhaseCounts())
    targeted = phase.targeted - min(control.accepted_failures.get(number, 0), phase.targeted)
    return targeted <= 0 or phase.succeeded * 100 >= plan.success_threshold * targeted


def _above(failed: int, targeted: int, threshold: int) -> bool:
    return targeted > 0 and failed * 100 > threshold * targeted


def _rate(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part * 100 // whole if whole else 0}%)"


def _paused_reason(plan: PhasePlan, failed: int, targeted: int) -> str:
    if _above(failed, targeted, plan.error_threshold):
        return (
            f"paused: {_rate(failed, targeted)} of released clients failed, above the "
            f"{plan.error_threshold}% error threshold; resume to accept these failures"
        )
    return "paused by an administrator"


def _progress(
    plan: PhasePlan, counts: Mapping[int, PhaseCounts], control: RolloutControl, released: int
) -> str:
    if released == len(plan.phases):
        return f"all {released} phases released"
    phase = counts.get(released, PhaseCounts())
    accepted = min(control.accepted_failures.get(released, 0), phase.targeted)
    return (
        f"phase {released} of {len(plan.phases)} released: "
        f"{_rate(phase.succeeded, phase.targeted - accepted)} succeeded; phase "
        f"{released + 1} starts at {plan.success_threshold}%"
    )
