"""decide(): when a deployment runs, from policy, local memory and an injected `now`.

The rules themselves are core.schedule's (tests/rules/test_schedule.py); these tests check
that the client feeds them its memory correctly and adds retries within an attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from quartermaster.client.local_state import DeploymentState, Result
from quartermaster.client.policy import DeploymentPolicy
from quartermaster.client.scheduling import Action, decide, next_wakeup, retry_delay
from quartermaster.core.program import ProgramSpec
from quartermaster.core.schedule import CLOCK_TOLERANCE

from .conftest import START

HOUR = timedelta(hours=1)


def deployment(
    version: int = 1,
    *,
    deadline: datetime | None = START - HOUR,
    available: datetime | None = None,
    expires: datetime | None = None,
    rerun: str = "if-failed",
    state: str = "active",
) -> DeploymentPolicy:
    return DeploymentPolicy(
        "QM120000",
        "QM100001",
        "Pkg",
        version,
        "a" * 64,
        ProgramSpec("Install", "exit 0"),
        available,
        deadline,
        expires,
        rerun,
        state,
    )


def ran(version: int, result: str) -> DeploymentState:
    local = DeploymentState()
    local.record_run(version, result, 0, START - HOUR)
    return local


def test_mandatory_deployment_runs_when_the_program_never_ran() -> None:
    assert decide(deployment(), DeploymentState(), START).action is Action.RUN


def test_deployment_without_deadline_is_announced_as_available_not_run() -> None:
    decision = decide(deployment(deadline=None), DeploymentState(), START)
    assert decision.action is Action.AVAILABLE


def test_deadline_in_the_future_is_available_until_then() -> None:
    decision = decide(deployment(deadline=START + HOUR), DeploymentState(), START)
    assert decision.action is Action.AVAILABLE
    assert decision.until == START + HOUR
    assert decision.wake_at == START + HOUR - CLOCK_TOLERANCE


def test_asking_for_an_available_deployment_runs_it() -> None:
    decision = decide(deployment(deadline=None), DeploymentState(), START, requested=True)
    assert decision.action is Action.RUN


@pytest.mark.parametrize("state", ["paused", "cancelled"])
def test_paused_or_cancelled_deployment_is_skipped(state: str) -> None:
    decision = decide(deployment(state=state), DeploymentState(), START, requested=True)
    assert decision.action is Action.SKIP


def test_expired_deployment_is_expired_unless_it_already_succeeded() -> None:
    expired = deployment(expires=START - timedelta(seconds=1))
    assert decide(expired, DeploymentState(), START).action is Action.EXPIRED
    assert decide(expired, ran(1, Result.FAILED), START).action is Action.EXPIRED
    assert decide(expired, ran(1, Result.SUCCEEDED), START).action is Action.SKIP


def test_deployment_not_yet_available_is_skipped_even_when_asked() -> None:
    decision = decide(deployment(available=START + HOUR), DeploymentState(), START, requested=True)
    assert decision.action is Action.SKIP


def test_scheduled_retry_waits_until_due_then_runs() -> None:
    local = DeploymentState()
    local.record_run(1, Result.RETRYING, 5, START)
    due = START + timedelta(minutes=10)
    local.schedule_retry(due)
    waiting = decide(deployment(rerun="never"), local, START + timedelta(minutes=5))
    assert waiting.action is Action.WAIT
    assert waiting.until == due
    assert waiting.wake_at == due  # the client's own time: no clock tolerance
    assert (
        decide(deployment(rerun="never"), local, due - timedelta(seconds=1)).action is Action.WAIT
    )
    assert decide(deployment(rerun="never"), local, due).action is Action.RUN


def test_a_retry_does_not_outlive_expiry_or_a_pause() -> None:
    local = DeploymentState()
    local.record_run(1, Result.RETRYING, 5, START - HOUR)
    local.schedule_retry(START - timedelta(minutes=1))
    expired = deployment(expires=START - timedelta(seconds=1))
    assert decide(expired, local, START).action is Action.EXPIRED
    assert decide(deployment(state="paused"), local, START).action is Action.SKIP


def test_a_new_source_version_supersedes_a_scheduled_retry() -> None:
    local = DeploymentState()
    local.record_run(1, Result.RETRYING, 5, START)
    local.schedule_retry(START + HOUR)
    assert decide(deployment(version=2), local, START).action is Action.RUN


def test_download_failures_do_not_count_as_runs() -> None:
    local = DeploymentState()
    local.record_step(1, Result.CONTENT_UNAVAILABLE, "no DP")
    assert decide(deployment(rerun="never"), local, START).action is Action.RUN


# (rerun, last attempt's result, the attempt was of an older version, asked) -> runs?
# The attempt started at the current deadline; docs/deployments.md, "Rerun rules".
RERUN_TABLE = [
    ("never", Result.SUCCEEDED, True, False, False),
    ("never", Result.SUCCEEDED, False, True, False),
    ("never", Result.FAILED, False, False, False),
    ("never", Result.FAILED, False, True, False),
    ("never", Result.FAILED, True, False, True),
    ("always", Result.SUCCEEDED, True, False, True),
    ("always", Result.SUCCEEDED, False, False, False),
    ("always", Result.SUCCEEDED, False, True, True),
    ("always", Result.FAILED, False, False, False),
    ("always", Result.FAILED, False, True, True),
    ("if-failed", Result.SUCCEEDED, True, False, False),
    ("if-failed", Result.SUCCEEDED, False, False, False),
    ("if-failed", Result.SUCCEEDED, False, True, False),
    ("if-failed", Result.FAILED, False, False, False),
    ("if-failed", Result.FAILED, False, True, True),
    ("if-failed", Result.FAILED, True, False, True),
    ("if-failed", Result.TIMED_OUT, False, True, True),
    ("if-succeeded", Result.SUCCEEDED, True, False, True),
    ("if-succeeded", Result.SUCCEEDED, False, False, False),
    ("if-succeeded", Result.SUCCEEDED, False, True, True),
    ("if-succeeded", Result.FAILED, False, True, False),
    ("if-succeeded", Result.FAILED, True, False, True),
]


@pytest.mark.parametrize(("rerun", "last", "older", "asked", "runs"), RERUN_TABLE)
def test_rerun_behaviour_follows_the_documented_table(
    rerun: str, last: str, older: bool, asked: bool, runs: bool
) -> None:
    local = ran(1, last)
    decision = decide(deployment(2 if older else 1, rerun=rerun), local, START, requested=asked)
    assert (decision.action is Action.RUN) is runs, decision.reason


# A new deadline (set after the attempt started) runs it again where the rule allows.
@pytest.mark.parametrize(
    ("rerun", "last", "runs"),
    [
        ("never", Result.SUCCEEDED, False),
        ("never", Result.FAILED, False),
        ("always", Result.SUCCEEDED, True),
        ("always", Result.FAILED, True),
        ("if-failed", Result.SUCCEEDED, False),
        ("if-failed", Result.FAILED, True),
        ("if-succeeded", Result.SUCCEEDED, True),
        ("if-succeeded", Result.FAILED, False),
    ],
)
def test_a_new_deadline_reruns_as_the_rule_says(rerun: str, last: str, runs: bool) -> None:
    local = DeploymentState()
    local.record_run(1, last, 0, START - 3 * HOUR)  # ran before the deadline was moved
    decision = decide(deployment(rerun=rerun, deadline=START - HOUR), local, START)
    assert (decision.action is Action.RUN) is runs, decision.reason


def test_a_failed_attempt_is_not_repeated_at_every_agent_run() -> None:
    local = ran(1, Result.FAILED)
    for minutes in (0, 60, 600):
        later = START + timedelta(minutes=minutes)
        assert decide(deployment(), local, later).action is not Action.RUN


def test_retry_delay_doubles_with_each_retry() -> None:
    assert [retry_delay(60, n).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_delay(0, 3) == timedelta(0)


def test_next_wakeup_is_the_earliest_retry_or_deadline() -> None:
    later = deployment(deadline=START + 2 * HOUR)
    retrying = DeploymentPolicy(
        "QM120001",
        "QM100002",
        "Other",
        1,
        "b" * 64,
        ProgramSpec("Install", "exit 0"),
        None,
        START - HOUR,
        None,
    )
    local = DeploymentState()
    local.record_run(1, Result.RETRYING, 5, START)
    local.schedule_retry(START + HOUR)
    wake = next_wakeup((later, retrying), {"QM120001": local}, START)
    assert wake == START + HOUR


def _windowed(texts: list[str], override: bool = False) -> DeploymentPolicy:
    from dataclasses import replace

    from quartermaster.core.schedule import parse_windows

    return replace(
        deployment(), maintenance_windows=parse_windows(texts), override_maintenance=override
    )


def test_maintenance_window_holds_a_mandatory_run_until_it_opens() -> None:
    window = ["daily 00:00-00:01 UTC"]
    opens = (START + timedelta(days=1)).replace(hour=0, minute=0)  # START is at noon
    outside = opens - HOUR
    decision = decide(_windowed(window), DeploymentState(), outside)
    assert decision.action is Action.WAIT_WINDOW
    assert decision.until == opens
    assert decide(_windowed(window), DeploymentState(), opens).action is Action.RUN
    wake = next_wakeup((_windowed(window),), {}, outside)
    assert wake == opens - CLOCK_TOLERANCE


def test_a_requested_or_overriding_run_ignores_maintenance_windows() -> None:
    window = ["daily 00:00-00:01 UTC"]
    outside = START.replace(hour=12, minute=0)
    asked = decide(_windowed(window), DeploymentState(), outside, requested=True)
    assert asked.action is Action.RUN
    assert decide(_windowed(window, override=True), DeploymentState(), outside).action is Action.RUN


def test_no_maintenance_windows_means_no_restriction() -> None:
    assert decide(_windowed([]), DeploymentState(), START.replace(hour=12)).action is Action.RUN
