"""Schedules with an injected clock: times, maintenance windows, deadlines and rerun rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quartermaster.core.errors import InvalidInput
from quartermaster.core.schedule import (
    CLOCK_TOLERANCE,
    Action,
    DeploymentSchedule,
    LastRun,
    Rerun,
    Result,
    Why,
    check_times,
    decide,
    is_open,
    next_open,
    parse_duration,
    parse_time,
    parse_window,
    parse_windows,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


NOW = utc(2026, 11, 25, 12, 0)  # a Wednesday
AVAILABLE = utc(2026, 11, 25, 0, 0)
DEADLINE = utc(2026, 11, 26, 0, 0)
AFTER_DEADLINE = utc(2026, 11, 26, 6, 0)
AT_DEADLINE = DEADLINE + timedelta(minutes=5)  # the client ran it when it became mandatory
EARLY = NOW  # the client ran it on request, before the deadline
LATER = AFTER_DEADLINE + timedelta(hours=1)


def schedule(**changes: object) -> DeploymentSchedule:
    fields: dict[str, object] = {"available": AVAILABLE, "deadline": DEADLINE}
    fields.update(changes)
    return DeploymentSchedule(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- administrator times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("+2h", NOW + timedelta(hours=2)),
        ("+30m", NOW + timedelta(minutes=30)),
        ("+1d", NOW + timedelta(days=1)),
        ("+1d12h", NOW + timedelta(days=1, hours=12)),
        ("2026-12-24T20:00Z", utc(2026, 12, 24, 20, 0)),
        ("2026-12-24T21:00:00+01:00", utc(2026, 12, 24, 20, 0)),
        ("2026-12-24 21:00 Europe/Berlin", utc(2026, 12, 24, 20, 0)),
        ("2026-07-24T21:00 Europe/Berlin", utc(2026, 7, 24, 19, 0)),
    ],
)
def test_administrator_time_becomes_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, NOW, "--deadline")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-24T20:00", "has no time zone"),
        ("tomorrow", "is not a time"),
        ("+2x", "is not a duration"),
        ("2026-03-29T02:30 Europe/Berlin", "does not exist"),
        ("2026-10-25T02:30 Europe/Berlin", "occurs twice"),
        ("2026-12-24T20:00 Mars/Olympus", "is not known"),
    ],
)
def test_unclear_administrator_time_is_refused_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_time(text, NOW, "--deadline")
    assert "--deadline" in caught.value.message
    assert caught.value.hint


def test_duration_rejects_nonsense_and_absurd_lengths() -> None:
    assert parse_duration("1w") == timedelta(weeks=1)
    with pytest.raises(InvalidInput):
        parse_duration("")
    with pytest.raises(InvalidInput, match="ten years"):
        parse_duration("99999d")


def test_deadline_before_available_and_expiry_before_deadline_are_refused() -> None:
    check_times(AVAILABLE, DEADLINE, DEADLINE + timedelta(days=1))
    with pytest.raises(InvalidInput, match="before the available time"):
        check_times(DEADLINE, AVAILABLE, None)
    with pytest.raises(InvalidInput, match="never be mandatory"):
        check_times(AVAILABLE, DEADLINE, DEADLINE)
    with pytest.raises(InvalidInput, match="expires before it becomes available"):
        check_times(AVAILABLE, None, AVAILABLE)


# --------------------------------------------------------------------------- maintenance windows


def test_weekly_window_crossing_midnight_is_open_until_its_end_the_next_day() -> None:
    window = [parse_window("Sat 22:00-02:00 UTC")]
    assert not is_open(window, utc(2026, 11, 28, 21, 59))
    assert is_open(window, utc(2026, 11, 28, 22, 0))
    assert is_open(window, utc(2026, 11, 29, 1, 59, 59))
    assert not is_open(window, utc(2026, 11, 29, 2, 0))
    assert not is_open(window, utc(2026, 11, 27, 23, 0))  # Friday night is not Saturday's
    assert next_open(window, NOW) == utc(2026, 11, 28, 22, 0)


def test_daily_window_in_a_named_zone_follows_daylight_saving() -> None:
    window = [parse_window("daily 01:00-03:00 Europe/Berlin")]
    # winter: CET, UTC+1
    assert next_open(window, utc(2026, 1, 10, 12, 0)) == utc(2026, 1, 11, 0, 0)
    # summer: CEST, UTC+2
    assert next_open(window, utc(2026, 7, 10, 12, 0)) == utc(2026, 7, 10, 23, 0)
    # spring forward (29 March): 01:00 CET to 03:00 CEST is one hour long
    assert is_open(window, utc(2026, 3, 29, 0, 59))
    assert not is_open(window, utc(2026, 3, 29, 1, 0))
    # fall back (25 October): 01:00 CEST to 03:00 CET is three hours long
    assert is_open(window, utc(2026, 10, 24, 23, 0))
    assert is_open(window, utc(2026, 10, 25, 1, 59))
    assert not is_open(window, utc(2026, 10, 25, 2, 0))


def test_window_crossing_midnight_on_the_night_daylight_saving_ends() -> None:
    window = [parse_window("Sat 22:00-02:00 Europe/Berlin")]
    opens = next_open(window, utc(2026, 10, 24, 12, 0))
    assert opens == utc(2026, 10, 24, 20, 0)  # 22:00 CEST
    # 02:00 occurs twice that night; the first one (still CEST) ends the window
    assert is_open(window, utc(2026, 10, 24, 23, 59))
    assert not is_open(window, utc(2026, 10, 25, 0, 0))


def test_one_off_window_opens_once() -> None:
    window = [parse_window("2026-12-24T20:00Z/2026-12-25T02:00Z")]
    assert next_open(window, NOW) == utc(2026, 12, 24, 20, 0)
    assert is_open(window, utc(2026, 12, 25, 1, 0))
    assert next_open(window, utc(2026, 12, 25, 2, 0)) is None


def test_no_windows_means_no_restriction() -> None:
    assert is_open([], NOW)
    assert next_open([], NOW) == NOW


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("sat 22:00-02:00 utc", "Sat 22:00-02:00 UTC"),
        ("mon-fri 7:00-24:00 Europe/Berlin", "Mon-Fri 07:00-24:00 Europe/Berlin"),
        ("Sat,Sun 00:00-06:00 UTC", "Sat,Sun 00:00-06:00 UTC"),
        ("Mon-Sun 01:00-03:00 UTC", "daily 01:00-03:00 UTC"),
        ("2026-12-24T21:00+01:00/2026-12-25T03:00+01:00", "2026-12-24T20:00Z/2026-12-25T02:00Z"),
    ],
)
def test_window_is_stored_in_a_normalized_form_that_parses_back(text: str, normalized: str) -> None:
    window = parse_window(text)
    assert window.text == normalized
    assert parse_window(window.text) == window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Sat 22:00-02:00", "no time zone"),
        ("Sut 22:00-02:00 UTC", "not a day"),
        ("Sat 25:00-02:00 UTC", "not a time of day"),
        ("Sat 02:00-02:00 UTC", "no length"),
        ("2026-12-25T02:00Z/2026-12-24T20:00Z", "ends before it starts"),
        ("weekends", "not understood"),
    ],
)
def test_unclear_window_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_window(text)


# --------------------------------------------------------------------------- deadlines


def test_available_but_not_mandatory_does_not_run_by_itself() -> None:
    decision = decide(schedule(), None, source_version=1, now=NOW)
    assert decision.action is Action.AVAILABLE
    assert decision.until == DEADLINE


def test_available_without_deadline_never_becomes_mandatory() -> None:
    decision = decide(schedule(deadline=None), None, source_version=1, now=AFTER_DEADLINE)
    assert decision.action is Action.AVAILABLE
    assert decision.until is None


def test_available_deployment_runs_when_a_user_asks() -> None:
    decision = decide(schedule(), None, source_version=1, requested=True, now=NOW)
    assert (decision.action, decision.why) == (Action.RUN, Why.REQUESTED)


def test_deadline_makes_it_run() -> None:
    decision = decide(schedule(), None, source_version=1, now=AFTER_DEADLINE)
    assert (decision.action, decision.why) == (Action.RUN, Why.DEADLINE)


def test_not_yet_available_waits_even_when_asked() -> None:
    early = AVAILABLE - timedelta(hours=1)
    decision = decide(schedule(), None, source_version=1, requested=True, now=early)
    assert (decision.action, decision.why) == (Action.WAIT, Why.NOT_AVAILABLE_YET)
    assert decision.until == AVAILABLE
    assert decision.wake_at == AVAILABLE - CLOCK_TOLERANCE


def test_expired_deployment_never_runs() -> None:
    expires = DEADLINE + timedelta(hours=1)
    for requested in (False, True):
        decision = decide(
            schedule(expires=expires), None, source_version=1, requested=requested, now=expires
        )
        assert decision.action is Action.EXPIRED
    just_before = decide(
        schedule(expires=expires), None, source_version=1, now=expires - timedelta(seconds=1)
    )
    assert just_before.action is Action.RUN


def test_expiry_after_a_success_is_not_reported_as_expired() -> None:
    expires = DEADLINE + timedelta(hours=1)
    ran = LastRun(Result.SUCCEEDED, 1, AT_DEADLINE)
    decision = decide(
        schedule(expires=expires, rerun=Rerun.ALWAYS), ran, source_version=1, now=expires
    )
    assert (decision.action, decision.why) == (Action.SKIP, Why.EXPIRED)
    newer = decide(
        schedule(expires=expires, rerun=Rerun.ALWAYS), ran, source_version=2, now=expires
    )
    assert newer.action is Action.EXPIRED


def test_deadline_may_be_met_up_to_the_clock_tolerance_early() -> None:
    inside = decide(
        schedule(), None, source_version=1, now=DEADLINE - CLOCK_TOLERANCE + timedelta(seconds=1)
    )
    outside = decide(
        schedule(), None, source_version=1, now=DEADLINE - CLOCK_TOLERANCE - timedelta(seconds=1)
    )
    assert inside.action is Action.RUN
    assert outside.action is Action.AVAILABLE


def test_maintenance_window_holds_a_mandatory_run_until_it_opens() -> None:
    windows = parse_windows(["Sat 22:00-02:00 UTC"])
    clock = AFTER_DEADLINE  # Thursday morning
    decision = decide(schedule(), None, source_version=1, windows=windows, now=clock)
    assert (decision.action, decision.why) == (Action.WAIT, Why.MAINTENANCE_WINDOW)
    assert decision.until == utc(2026, 11, 28, 22, 0)
    assert decision.wake_at is not None
    clock = decision.wake_at - timedelta(seconds=1)
    assert (
        decide(schedule(), None, source_version=1, windows=windows, now=clock).action is Action.WAIT
    )
    clock = decision.wake_at
    assert (
        decide(schedule(), None, source_version=1, windows=windows, now=clock).action is Action.RUN
    )


def test_a_user_request_and_the_override_flag_ignore_maintenance_windows() -> None:
    windows = parse_windows(["Sat 22:00-02:00 UTC"])
    asked = decide(
        schedule(), None, source_version=1, requested=True, windows=windows, now=AFTER_DEADLINE
    )
    overriding = decide(
        schedule(override_maintenance=True),
        None,
        source_version=1,
        windows=windows,
        now=AFTER_DEADLINE,
    )
    assert asked.action is Action.RUN
    assert overriding.action is Action.RUN


def test_paused_and_cancelled_deployments_are_skipped() -> None:
    for state, why in (("paused", Why.PAUSED), ("cancelled", Why.CANCELLED)):
        decision = decide(
            schedule(state=state), None, source_version=1, requested=True, now=AFTER_DEADLINE
        )
        assert (decision.action, decision.why) == (Action.SKIP, why)


def test_decisions_refuse_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(schedule(), None, source_version=1, now=datetime(2026, 11, 26, 6, 0))


def test_schedule_reads_the_policy_entry() -> None:
    entry = {
        "available": "2026-11-25T00:00:00Z",
        "deadline": "2026-11-26T00:00:00Z",
        "expires": None,
        "rerun": "if-succeeded",
        "state": "active",
    }
    assert DeploymentSchedule.from_policy(entry) == schedule(rerun=Rerun.IF_SUCCEEDED)
    with pytest.raises(InvalidInput, match="rerun behaviour"):
        DeploymentSchedule.from_policy(entry | {"rerun": "sometimes"})


# --------------------------------------------------------------------------- rerun rules


# rule, last result (None = never ran), expected action without and with a user request
SAME_VERSION = [
    (Rerun.NEVER, None, Action.RUN, Action.RUN),
    (Rerun.NEVER, Result.SUCCEEDED, Action.SKIP, Action.SKIP),
    (Rerun.NEVER, Result.FAILED, Action.SKIP, Action.SKIP),
    (Rerun.ALWAYS, None, Action.RUN, Action.RUN),
    (Rerun.ALWAYS, Result.SUCCEEDED, Action.AVAILABLE, Action.RUN),
    (Rerun.ALWAYS, Result.FAILED, Action.AVAILABLE, Action.RUN),
    (Rerun.IF_FAILED, None, Action.RUN, Action.RUN),
    (Rerun.IF_FAILED, Result.SUCCEEDED, Action.SKIP, Action.SKIP),
    (Rerun.IF_FAILED, Result.FAILED, Action.AVAILABLE, Action.RUN),
    (Rerun.IF_SUCCEEDED, None, Action.RUN, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.SUCCEEDED, Action.AVAILABLE, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.FAILED, Action.SKIP, Action.SKIP),
]


@pytest.mark.parametrize(
    ("rule", "result", "alone", "asked"),
    SAME_VERSION,
    ids=[f"{r}-{res or 'never-ran'}" for r, res, _, _ in SAME_VERSION],
)
def test_rerun_rule_after_the_deadline_run(
    rule: Rerun, result: Result | None, alone: Action, asked: Action
) -> None:
    last = None if result is None else LastRun(result, 1, AT_DEADLINE)
    by_itself = decide(schedule(rerun=rule), last, source_version=1, now=LATER)
    on_request = decide(schedule(rerun=rule), last, source_version=1, requested=True, now=LATER)
    assert (by_itself.action, on_request.action) == (alone, asked)


# a client that ran it early, on request: does the deadline run it again?
EARLY_RUN = [
    (Rerun.NEVER, Result.SUCCEEDED, Action.SKIP),
    (Rerun.NEVER, Result.FAILED, Action.SKIP),
    (Rerun.ALWAYS, Result.SUCCEEDED, Action.RUN),
    (Rerun.ALWAYS, Result.FAILED, Action.RUN),
    (Rerun.IF_FAILED, Result.SUCCEEDED, Action.SKIP),
    (Rerun.IF_FAILED, Result.FAILED, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.SUCCEEDED, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.FAILED, Action.SKIP),
]


@pytest.mark.parametrize(
    ("rule", "result", "expected"), EARLY_RUN, ids=[f"{r}-{res}" for r, res, _ in EARLY_RUN]
)
def test_rerun_rule_at_a_deadline_after_an_early_run(
    rule: Rerun, result: Result, expected: Action
) -> None:
    decision = decide(schedule(rerun=rule), LastRun(result, 1, EARLY), source_version=1, now=LATER)
    assert decision.action is expected


NEW_VERSION = [
    (Rerun.NEVER, Result.SUCCEEDED, Action.SKIP),
    (Rerun.NEVER, Result.FAILED, Action.RUN),
    (Rerun.ALWAYS, Result.SUCCEEDED, Action.RUN),
    (Rerun.ALWAYS, Result.FAILED, Action.RUN),
    (Rerun.IF_FAILED, Result.SUCCEEDED, Action.SKIP),
    (Rerun.IF_FAILED, Result.FAILED, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.SUCCEEDED, Action.RUN),
    (Rerun.IF_SUCCEEDED, Result.FAILED, Action.RUN),
]


@pytest.mark.parametrize(
    ("rule", "result", "expected"), NEW_VERSION, ids=[f"{r}-{res}" for r, res, _ in NEW_VERSION]
)
def test_new_source_version_reaches_clients_that_have_not_succeeded(
    rule: Rerun, result: Result, expected: Action
) -> None:
    last = LastRun(result, 1, AT_DEADLINE)
    decision = decide(schedule(rerun=rule), last, source_version=2, now=LATER)
    assert decision.action is expected


def test_a_run_started_within_the_tolerance_before_the_deadline_counts_for_it() -> None:
    ran = LastRun(Result.SUCCEEDED, 1, DEADLINE - CLOCK_TOLERANCE + timedelta(seconds=1))
    decision = decide(schedule(rerun=Rerun.ALWAYS), ran, source_version=1, now=LATER)
    assert decision.action is Action.AVAILABLE


def test_moving_the_deadline_reruns_always_deployments() -> None:
    ran = LastRun(Result.SUCCEEDED, 1, AT_DEADLINE)
    moved = DEADLINE + timedelta(days=3)
    decision = decide(
        schedule(rerun=Rerun.ALWAYS, deadline=moved),
        ran,
        source_version=1,
        now=moved + timedelta(minutes=1),
    )
    assert decision.action is Action.RUN


def test_skip_names_the_rule_and_the_earlier_result() -> None:
    decision = decide(
        schedule(rerun=Rerun.IF_FAILED),
        LastRun(Result.SUCCEEDED, 3, AT_DEADLINE),
        source_version=3,
        now=LATER,
    )
    assert decision.why is Why.RERUN_RULE
    assert decision.detail == (
        "already succeeded with source version 3; rerun rule if-failed does not run it again"
    )
