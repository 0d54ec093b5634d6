"""The one retry helper: doubling delays with a cap and jitter, and the retry loop, no sleeping."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from quartermaster.core.backoff import Backoff, FailureStreak, retry_async


class FixedRandom(random.Random):
    """`uniform(a, b)` always answers the same point of the interval: 0 = a, 1 = b."""

    def __init__(self, point: float) -> None:
        super().__init__()
        self.point = point

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.point


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    backoff = Backoff(first=0.5, cap=5.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_another_factor_and_no_cap() -> None:
    assert [Backoff(first=60, factor=3).delay(n) for n in (1, 2, 3)] == [60, 180, 540]


def test_a_very_long_streak_stays_at_the_cap_instead_of_overflowing() -> None:
    assert Backoff(first=2.0, cap=300.0).delay(10_000) == 300.0
    assert Backoff(first=2.0).delay(10_000) == math.inf


def test_a_zero_first_delay_stays_zero() -> None:
    assert Backoff(first=0).delay(5) == 0


def test_jitter_scales_each_delay_within_its_share() -> None:
    backoff = Backoff(first=2.0, cap=300.0, jitter=0.5)
    assert backoff.delay(3, FixedRandom(0.0)) == 4.0  # 8 s * 0.5
    assert backoff.delay(3, FixedRandom(1.0)) == 8.0
    assert backoff.delay(20, FixedRandom(0.0)) == 150.0


def test_jittered_delays_stay_inside_their_bounds() -> None:
    backoff = Backoff(first=1.0, cap=60.0, jitter=0.5)
    rng = random.Random(7)
    for failures in range(1, 12):
        ceiling = min(60.0, 2.0 ** (failures - 1))
        assert ceiling / 2 <= backoff.delay(failures, rng) <= ceiling


@pytest.mark.parametrize(
    "options",
    [
        {"first": -1.0},
        {"first": 1.0, "factor": 0.5},
        {"first": 1.0, "jitter": 1.5},
        {"first": 1.0, "cap": 0.0},
    ],
)
def test_an_unusable_backoff_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**options)


def test_there_is_no_delay_before_the_first_failure() -> None:
    with pytest.raises(ValueError):
        Backoff(first=1.0).delay(0)


def test_a_streak_grows_with_failures_and_starts_again_after_a_success() -> None:
    streak = FailureStreak(Backoff(first=2.0, cap=10.0, jitter=0.5), FixedRandom(1.0))
    assert [streak.failed() for _ in range(4)] == [2.0, 4.0, 8.0, 10.0]
    streak.succeeded()
    assert streak.failures == 0
    assert streak.failed() == 2.0


class Flaky:
    """Fails with `error` the first `failures` times, then answers "done"."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def run_retry(attempt: Flaky, backoff: Backoff) -> tuple[str, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    result = asyncio.run(
        retry_async(attempt, retry_on=(ConnectionError,), backoff=backoff, sleep=sleep)
    )
    return result, slept


def test_retry_waits_the_backoff_between_attempts_until_one_succeeds() -> None:
    attempt = Flaky(4, ConnectionError("site starting"))
    result, slept = run_retry(attempt, Backoff(first=0.2, cap=1.0))
    assert result == "done"
    assert attempt.calls == 5
    assert slept == [0.2, 0.4, 0.8, 1.0]


def test_retry_does_not_wait_when_the_first_attempt_succeeds() -> None:
    assert run_retry(Flaky(0, ConnectionError()), Backoff(first=1.0)) == ("done", [])


def test_an_error_not_named_ends_the_retry_at_once() -> None:
    attempt = Flaky(3, PermissionError("token refused"))
    with pytest.raises(PermissionError):
        run_retry(attempt, Backoff(first=1.0))
    assert attempt.calls == 1


def test_cancelling_the_task_ends_the_retry_while_it_waits() -> None:
    async def scenario() -> int:
        attempt = Flaky(1_000_000, ConnectionError())
        waiting = asyncio.Event()

        async def sleep(_seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(
            retry_async(attempt, retry_on=(ConnectionError,), backoff=Backoff(1.0), sleep=sleep)
        )
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return attempt.calls

    assert asyncio.run(scenario()) == 1
