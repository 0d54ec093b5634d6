"""Download rate limits, like BITS: a cap, and a weekly schedule that changes it.

A limit is `{"rate": R, "schedule": [{"days": "mon-fri", "from": "08:00", "to": "18:00",
"rate": R2}, ...]}` with rates in bytes per second: `null` is unlimited, `0` pauses
downloads. Times are UTC; a window whose `to` is not after its `from` runs past midnight.
The first window that contains a moment gives its rate, else `rate` does. The site keeps
rules (per client, per boundary, a default) and puts the one that applies into each
client's policy; the client paces its downloads by it and re-reads it between chunks, so a
change of window takes effect during a transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from quartermaster.core.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _rate(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{where}: a rate is bytes per second (0 pauses, null is unlimited)")
    return value


def _days(text: Any, where: str) -> frozenset[int]:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{where}: days are like 'mon-fri' or 'sat,sun'")
    found: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InvalidInput(
                f"{where}: unknown day in {text!r}", "use mon tue wed thu fri sat sun"
            )
        a, b = DAYS.index(first), DAYS.index(last or first)
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


def _clock(text: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(text))
    except ValueError:
        raise InvalidInput(f"{where}: {text!r} is not a time like 08:00") from None


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    rate: int | None

    def contains(self, when: datetime) -> bool:
        moment = when.time().replace(tzinfo=None)
        if self.start < self.end:
            return when.weekday() in self.days and self.start <= moment < self.end
        # Past midnight: the evening belongs to the day named, the morning to the day after.
        if moment >= self.start:
            return when.weekday() in self.days
        return moment < self.end and (when.weekday() - 1) % 7 in self.days


@dataclass(frozen=True)
class BandwidthLimit:
    rate: int | None = None
    windows: tuple[Window, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> BandwidthLimit:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidInput("a bandwidth limit is an object with rate and schedule")
        windows = []
        for index, entry in enumerate(data.get("schedule") or []):
            where = f"bandwidth schedule entry {index + 1}"
            if not isinstance(entry, dict):
                raise InvalidInput(f"{where} is not an object")
            windows.append(
                Window(
                    _days(entry.get("days"), where),
                    _clock(entry.get("from"), where),
                    _clock(entry.get("to"), where),
                    _rate(entry.get("rate"), where),
                )
            )
        return cls(_rate(data.get("rate"), "bandwidth rate"), tuple(windows))

    def rate_at(self, when: datetime) -> int | None:
        """Bytes per second allowed at `when` (UTC): None unlimited, 0 paused."""
        for window in self.windows:
            if window.contains(when):
                return window.rate
        return self.rate

    def next_change(
        self, when: datetime, horizon: timedelta = timedelta(days=8)
    ) -> datetime | None:
        """The first minute after `when` at which the rate differs, within `horizon`."""
        if not self.windows:
            return None
        current = self.rate_at(when)
        moment = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while moment - when <= horizon:
            if self.rate_at(moment) != current:
                return moment
            moment += timedelta(minutes=1)
        return None

    @property
    def unlimited(self) -> bool:
        return self.rate is None and not self.windows
