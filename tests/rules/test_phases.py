"""Phased rollout over 20 clients: release by success threshold, pause by error threshold."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from quartermaster.core.errors import InvalidInput
from quartermaster.site.deployments.phases import (
    PhaseCounts,
    PhasePlan,
    RolloutControl,
    assign_phase,
    count_phases,
    parse_phases,
    resume,
    rollout_state,
)

DEPLOYMENT = "QM120000"
CLIENTS = [str(uuid.uuid5(uuid.NAMESPACE_DNS, f"client-{i:02d}.example")) for i in range(20)]


def test_phases_parse_as_cumulative_percentages_with_thresholds() -> None:
    plan = parse_phases("5%,25%,100%", "90", "10%")
    assert plan == PhasePlan((5, 25, 100), 90, 10)
    assert parse_phases("50,100").phases == (50, 100)


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ("25%,5%,100%", "do not grow"),
        ("5%,5%,100%", "do not grow"),
        ("0%,100%", "do not grow"),
        ("5%,25%", "do not reach 100%"),
        ("5%,lots,100%", "not a list of percentages"),
        (",".join(f"{i}%" for i in range(1, 12)) + ",100%", "1 to 10 phases"),
    ],
)
def test_bad_phase_lists_are_refused(phases: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_phases(phases)


def test_thresholds_must_be_percentages() -> None:
    with pytest.raises(InvalidInput, match="success threshold"):
        parse_phases("100%", success_threshold=101)
    with pytest.raises(InvalidInput, match="error threshold"):
        parse_phases("100%", error_threshold="five")


def test_phase_of_a_client_depends_only_on_its_id_and_the_deployment() -> None:
    plan = parse_phases("5%,25%,100%")
    first = [assign_phase(DEPLOYMENT, c, plan) for c in CLIENTS]
    more = CLIENTS + [str(uuid.uuid4()) for _ in range(200)]
    again = [assign_phase(DEPLOYMENT, c, plan) for c in more][:20]
    assert first == again
    assert [assign_phase(DEPLOYMENT, c.upper(), plan) for c in CLIENTS] == first
    other = [assign_phase("QM120001", c, plan) for c in CLIENTS]
    assert other != first  # each deployment picks its own pilot clients


def test_phase_sizes_follow_the_percentages_over_many_clients() -> None:
    plan = parse_phases("5%,25%,100%")
    sizes = Counter(assign_phase(DEPLOYMENT, f"client-{i}", plan) for i in range(20_000))
    assert abs(sizes[1] / 20_000 - 0.05) < 0.01
    assert abs(sizes[2] / 20_000 - 0.20) < 0.015
    assert abs(sizes[3] / 20_000 - 0.75) < 0.015


# --------------------------------------------------------------------------- a rollout of 20


PLAN = parse_phases("20%,50%,100%", success_threshold=95, error_threshold=5)
PHASE_OF = {c: assign_phase(DEPLOYMENT, c, PLAN) for c in CLIENTS}


def members(phase: int) -> list[str]:
    return [c for c in CLIENTS if PHASE_OF[c] == phase]


def counts(states: dict[str, str]) -> dict[int, PhaseCounts]:
    return count_phases(PLAN, DEPLOYMENT, ((c, states.get(c, "unknown")) for c in CLIENTS))


def test_the_twenty_clients_fill_every_phase() -> None:
    assert [len(members(n)) for n in (1, 2, 3)] == [6, 4, 10]


def test_phase_two_is_released_only_after_phase_one_reaches_the_threshold() -> None:
    control = RolloutControl()
    states: dict[str, str] = {}
    assert rollout_state(PLAN, counts(states), control).released == 1
    for client in members(1)[:-1]:
        states[client] = "succeeded"
    almost = rollout_state(PLAN, counts(states), control)
    assert (almost.released, almost.paused) == (1, False)
    assert "phase 1 of 3 released: 5/6 (83%) succeeded" in almost.reason
    states[members(1)[-1]] = "succeeded"
    assert rollout_state(PLAN, counts(states), control).released == 2


def test_error_rate_above_threshold_pauses_and_resume_continues() -> None:
    states = {c: "succeeded" for c in members(1)}
    control = rollout_state(PLAN, counts(states), RolloutControl()).control(RolloutControl())
    assert control.released == 2
    states[members(2)[0]] = "failed"  # 1 of 10 released clients: 10% > 5%
    paused = rollout_state(PLAN, counts(states), control)
    assert (paused.paused, paused.auto_paused, paused.released) == (True, True, 2)
    assert "1/10 (10%) of released clients failed" in paused.reason
    control = paused.control(control)
    assert control.state == "paused"

    for client in members(2)[1:]:
        states[client] = "succeeded"
    still = rollout_state(PLAN, counts(states), control)
    assert (still.paused, still.auto_paused, still.released) == (True, False, 2)

    control = resume(PLAN, counts(states), control)
    resumed = rollout_state(PLAN, counts(states), control)
    assert (resumed.paused, resumed.released) == (False, 3)  # 3/3 not-accepted clients OK
    control = resumed.control(control)

    states[members(3)[0]] = "failed"  # a new failure counts again: 1/19 > 5%
    again = rollout_state(PLAN, counts(states), control)
    assert (again.auto_paused, again.released) == (True, 3)


def test_failures_at_the_threshold_do_not_pause() -> None:
    plan = parse_phases("100%", error_threshold=10)
    at = rollout_state(plan, {1: PhaseCounts(targeted=20, succeeded=0, failed=2)}, RolloutControl())
    over = rollout_state(
        plan, {1: PhaseCounts(targeted=20, succeeded=0, failed=3)}, RolloutControl()
    )
    assert (at.paused, over.paused) == (False, True)


def test_a_released_phase_stays_released_when_its_success_rate_drops() -> None:
    control = RolloutControl(released=2)
    state = rollout_state(PLAN, counts({}), control)  # e.g. a new source version resets states
    assert state.released == 2


def test_an_empty_phase_counts_as_complete() -> None:
    plan = parse_phases("10%,20%,100%")
    state = rollout_state(
        plan,
        {1: PhaseCounts(2, 2, 0), 2: PhaseCounts(0, 0, 0), 3: PhaseCounts(18, 0, 0)},
        RolloutControl(),
    )
    assert state.released == 3


def test_clients_whose_requirements_are_not_met_are_not_targeted() -> None:
    states = {c: "succeeded" for c in members(1)[1:]}
    states[members(1)[0]] = "requirements_not_met"
    assert counts(states)[1] == PhaseCounts(targeted=5, succeeded=5, failed=0)
    assert rollout_state(PLAN, counts(states), RolloutControl()).released == 2


def test_manual_pause_and_cancel_stop_the_rollout() -> None:
    done = {c: "succeeded" for c in members(1)}
    paused = rollout_state(PLAN, counts(done), RolloutControl(state="paused"))
    cancelled = rollout_state(PLAN, counts(done), RolloutControl(state="cancelled"))
    assert (paused.paused, paused.released, paused.reason) == (
        True,
        1,
        "paused by an administrator",
    )
    assert (cancelled.cancelled, cancelled.released) == (True, 1)
    with pytest.raises(InvalidInput, match="cannot be resumed"):
        resume(PLAN, counts(done), RolloutControl(state="cancelled"))


def test_plan_and_control_survive_a_json_round_trip() -> None:
    plan = parse_phases("5%,25%,100%", 90, 10)
    control = RolloutControl("paused", 2, {1: 0, 2: 3})
    assert PhasePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert RolloutControl.from_dict(json.loads(json.dumps(control.to_dict()))) == control
