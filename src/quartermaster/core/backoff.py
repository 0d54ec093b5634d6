"""Waiting between attempts: one doubling, capped, optionally jittered delay for every retry.

Every loop that tries again after a failure (a DP enrolling while its site starts, a DP
agent cycle after the site failed, a program's retry after a retryable exit code) takes its
delays from a `Backoff`, and the loops that wait in-line use `retry_async`. Time and
randomness come in as arguments, so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays `first`, `first * factor`, ... up to `cap` seconds.

    With `jitter` j each delay is scaled by a random factor in [1 - j, 1], so that many
    parts failing together (a site restart) do not come back together.
    """

    first: float
    cap: float = math.inf
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or not 0 <= self.jitter <= 1 or self.cap <= 0:
            raise ValueError(f"not a usable backoff: {self}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after `failures` failures in a row (1 for the first)."""
        if failures < 1:
            raise ValueError("a delay follows at least one failure")
        try:
            base = min(self.cap, self.first * float(self.factor) ** (failures - 1))
        except OverflowError:  # far past any cap
            base = self.cap
        if not self.jitter:
            return base
        return base * (rng or random).uniform(1 - self.jitter, 1.0)


@dataclass
class FailureStreak:
    """Failures in a row for a loop that keeps running (a DP agent's cycles)."""

    backoff: Backoff
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> float:
        """Count one more failure; returns the seconds to wait before the next attempt."""
        self.failures += 1
        return self.backoff.delay(self.failures, self.rng)


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Await `attempt()` until it returns; a `retry_on` error waits its delay and tries again.

    Any other error ends the loop, as does cancelling the task.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except retry_on:
            failures += 1
        await sleep(backoff.delay(failures, rng))
