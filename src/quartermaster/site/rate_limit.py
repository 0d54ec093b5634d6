"""A per-address budget for what anyone may do without a credential (registration).

Kept in the process: it bounds what one address can make one site process write, which is
what protects the database; N site processes allow N times the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from quartermaster.core.errors import QMError

MAX_ADDRESSES = 10_000  # addresses remembered at once; the oldest are forgotten first


class TooManyRequests(QMError):
    code = "too_many_requests"
    http_status = 429


class AddressBudget:
    """A token bucket per address: `per_minute` requests, refilled evenly; 0 is no limit."""

    def __init__(
        self, per_minute: int, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.what = what
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)
        self._lock = threading.Lock()

    def spend(self, address: str) -> None:
        """Take one request from `address`'s budget; 429 when it is spent."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.pop(address, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - when) * self.per_minute / 60)
            if tokens < 1:
                self._buckets[address] = (tokens, now)
                wait = int((1 - tokens) * 60 / self.per_minute) + 1
                raise TooManyRequests(
                    f"too many {self.what} from {address}: at most {self.per_minute} a minute",
                    f"try again in {wait} seconds",
                )
            self._buckets[address] = (tokens - 1, now)  # most recent last
            while len(self._buckets) > MAX_ADDRESSES:
                del self._buckets[next(iter(self._buckets))]
