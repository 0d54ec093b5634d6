"""When a client runs a deployment: times, maintenance windows and rerun rules, all pure.

The client calls :func:`decide` with its own clock; the site uses the parsers to check
what an administrator typed. Nothing here reads the clock: every function takes ``now``.

Times
    ``--available``, ``--deadline`` and ``--expires`` accept ISO 8601 with a zone
    (``2026-12-24T20:00Z``, ``2026-12-24T21:00+01:00``), a local time with an IANA zone
    name (``2026-12-24T21:00 Europe/Berlin``), ``now``, or ``now`` plus a duration
    (``+30m``, ``+2h``, ``+1d``, ``+1w``, combined as ``+1d12h``). They become aware UTC.

Maintenance windows (on a collection)
    ``Sat 22:00-02:00 UTC`` (weekly; ``Mon-Fri``, ``Sat,Sun`` and ``daily`` also work),
    ``daily 01:00-03:00 Europe/Berlin`` (wall-clock time in that zone, so it follows
    daylight saving), or a one-off ``2026-12-24T20:00Z/2026-12-25T02:00Z``. A window that
    ends at or before its start crosses midnight and belongs to the day it starts; ``24:00``
    is the end of the day. Windows are half-open: open at the start, closed at the end. A
    start or end that does not exist on a day (skipped by a spring-forward change) is read
    with the offset in force before the change, i.e. one hour later on the clock; a time that
    occurs twice (autumn) is the first one. No windows at all means no restriction.

Rerun rules
    An *attempt* is one run of the program to success or failure (success with a restart
    code is success; a run stopped before the program started, because requirements were
    not met or content could not be obtained, is not an attempt). A deployment is *due*
    (runs by itself once its deadline has come) when:

    - the client never attempted it, whatever the rule;
    - the package has a new source version and the client's last attempt failed: new
      content reaches every client that has not succeeded, whatever the rule;
    - ``never``: in no other case. A source version the client attempted is never run
      again, success or failure; a success with an older version does not run the new one.
    - ``always``: the last attempt is older than the current deadline (the deadline was set
      or moved after it ran, or it ran early on request), or a new source version arrived.
    - ``if-failed``: as ``always``, but only when the last attempt failed; a success is
      never repeated, not even for a new source version.
    - ``if-succeeded``: as ``always``, but only when the last attempt succeeded; a failure
      waits for a new source version.

    A user may ask to run it again (once available) under ``always``, ``if-failed`` after a
    failure and ``if-succeeded`` after a success, never under ``never``. A failed attempt is
    therefore not retried at every poll: it is retried at the next deadline the
    administrator sets, with a new source version, or when a user asks (retryable exit
    codes are retried within the attempt, see ``ProgramSpec``).

Decisions, in order
    cancelled or paused → skip; nothing to do under the rerun rule → skip; past
    ``expires`` → expired (never runs; a client that already succeeded with this source
    version skips instead, so a success is not reported as expired); before ``available``
    → wait; a user asked → run (maintenance windows do not hold a run a user asked for);
    not due, no deadline or before it → available only; outside every maintenance window
    and not allowed to override them → wait for the next window; otherwise run.

Clock tolerance
    Client clocks drift, so a client may start up to :data:`CLOCK_TOLERANCE` (60 s) before
    an available time, a deadline or a window's start; an attempt that began within that
    tolerance before a deadline counts as the run for that deadline. Expiry is exact: at
    the expiry instant, by the client's clock, the deployment no longer runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quartermaster.core.errors import InvalidInput

#: How much earlier than a scheduled instant a client may act; clocks are never exact.
CLOCK_TOLERANCE = timedelta(seconds=60)

_TIME_HINT = (
    "use ISO 8601 with a zone (2026-12-24T20:00Z, 2026-12-24T21:00+01:00, "
    "2026-12-24T21:00 Europe/Berlin), now, or +30m, +2h, +1d"
)
_WINDOW_HINT = (
    "e.g. 'Sat 22:00-02:00 UTC', 'Mon-Fri 01:00-03:00 Europe/Berlin', "
    "'daily 01:00-03:00 UTC' or '2026-12-24T20:00Z/2026-12-25T02:00Z'"
)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("schedule functions need an aware datetime for now")
    return now


# --------------------------------------------------------------------------- administrator times

_DURATION = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_time(text: str, now: datetime, what: str = "time") -> datetime:
    """An administrator's time (``now``, ``+2h``, ISO 8601 with zone) as aware UTC."""
    now = _aware(now)
    value = text.strip()
    if value.lower() == "now":
        return now.astimezone(UTC).replace(microsecond=0)
    if value.startswith("+"):
        return (now + parse_duration(value[1:], what)).astimezone(UTC).replace(microsecond=0)
    return _absolute(value, what)


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """``30m``, ``2h``, ``1d12h``: a positive duration."""
    compact = text.strip().lower()
    if not compact or not re.fullmatch(r"(\d+[wdhms])+", compact):
        raise InvalidInput(
            f"{what} '+{text}' is not a duration",
            "write +30m, +2h, +1d or +1w, or combine them as +1d12h",
        )
    delta = timedelta()
    for amount, unit in _DURATION.findall(compact):
        delta += timedelta(**{_UNITS[unit]: int(amount)})
    if delta > timedelta(days=3650):
        raise InvalidInput(f"{what} '+{text}' is more than ten years away", "give a nearer time")
    return delta


def _absolute(value: str, what: str) -> datetime:
    zone: tzinfo | None = None
    stamp, _, last_word = value.rpartition(" ")
    if stamp and not last_word[:1].isdigit():  # "2026-12-24T21:00 Europe/Berlin"
        zone = _zone(last_word, what)
    else:
        stamp = value
    try:
        parsed = datetime.fromisoformat(stamp.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not a time", _TIME_HINT) from None
    if zone is not None:
        if parsed.tzinfo is not None:
            raise InvalidInput(
                f"{what} {value!r} gives both an offset and a zone name", "give one of them"
            )
        return _localize(parsed, zone, value, what)
    if parsed.tzinfo is None:
        raise InvalidInput(
            f"{what} {value!r} has no time zone",
            f"add Z for UTC, an offset such as +01:00, or a zone name; {_TIME_HINT}",
        )
    return parsed.astimezone(UTC)


def _localize(local: datetime, zone: tzinfo, value: str, what: str) -> datetime:
    """A wall-clock time in a zone; refuse one the clocks skip or show twice."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != local:
            raise InvalidInput(
                f"{what} {value!r} does not exist: clocks skip it that day",
                "give a time outside the daylight-saving change, or an offset",
            )
        raise InvalidInput(
            f"{what} {value!r} occurs twice that day (daylight saving ends)",
            "give an explicit offset, e.g. 2026-10-25T02:30+02:00",
        )
    return first.astimezone(UTC)


def _zone(name: str, what: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{what}: time zone {name!r} is not known",
            "use UTC or an IANA zone name such as Europe/Berlin",
        ) from None


def check_times(available: datetime, deadline: datetime | None, expires: datetime | None) -> None:
    """Refuse a schedule that could never behave as written."""
    if deadline is not None and deadline < available:
        raise InvalidInput(
            "the deadline is before the available time", "set --deadline at or after --available"
        )
    if expires is not None and expires <= available:
        raise InvalidInput(
            "the deployment expires before it becomes available", "set --expires after --available"
        )
    if expires is not None and deadline is not None and expires <= deadline:
        raise InvalidInput(
            "the deployment expires at or before its deadline, so it would never be mandatory",
            "set --expires after --deadline",
        )


# --------------------------------------------------------------------------- maintenance windows

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {name: i for i, name in enumerate(_DAYS)} | {
    full: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_RECURRING = re.compile(
    r"(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})(?:\s+(?P<zone>\S+))?"
)


@dataclass(frozen=True)
class Window:
    """A maintenance window; ``text`` is its normalized form, which policy carries."""

    text: str

    def occurrences(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC, half-open) that overlap [start, end)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class OneOffWindow(Window):
    start: datetime
    end: datetime

    def occurrences(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        if self.end > start and self.start < end:
            yield self.start, self.end


@dataclass(frozen=True)
class WeeklyWindow(Window):
    days: frozenset[int]  # 0 = Monday
    start_time: time
    end_time: time
    spans_midnight: bool  # the window ends the day after it starts
    zone: tzinfo

    def occurrences(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            if day.weekday() in self.days:
                opens, closes = self._on(day)
                if closes > start and opens < end and closes > opens:
                    yield opens, closes
            day += timedelta(days=1)

    def _on(self, day: date) -> tuple[datetime, datetime]:
        end_day = day + timedelta(days=1) if self.spans_midnight else day
        opens = datetime.combine(day, self.start_time, tzinfo=self.zone)
        closes = datetime.combine(end_day, self.end_time, tzinfo=self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)


def parse_window(text: str) -> Window:
    """One maintenance window, as an administrator writes it."""
    value = " ".join(text.split())
    if "/" in value and "T" in value.upper() and " " not in value:
        return _one_off(value)
    match = _RECURRING.fullmatch(value)
    if not match:
        raise InvalidInput(f"maintenance window {text!r} is not understood", _WINDOW_HINT)
    if not match["zone"]:
        raise InvalidInput(
            f"maintenance window {text!r} has no time zone",
            "end it with UTC or a zone name, e.g. 'Sat 22:00-02:00 UTC'",
        )
    days = _days(match["days"], text)
    start, start_text = _clock(match["start"], text, allow_24=False)
    end, end_text = _clock(match["end"], text, allow_24=True)
    if start_text == end_text:
        raise InvalidInput(
            f"maintenance window {text!r} has no length", "use 00:00-24:00 for a whole day"
        )
    zone = _zone(match["zone"], "maintenance window")
    zone_text = "UTC" if zone is UTC else match["zone"]
    day_text = "daily" if days == frozenset(range(7)) else _days_text(days)
    normalized = f"{day_text} {start_text}-{end_text} {zone_text}"
    spans = end_text == "24:00" or end <= start
    return WeeklyWindow(normalized, days, start, end, spans, zone)


def parse_windows(texts: Iterable[str]) -> tuple[Window, ...]:
    return tuple(parse_window(t) for t in texts if t.strip())


def _one_off(value: str) -> Window:
    first, _, second = value.partition("/")
    start = _absolute(first, "maintenance window start")
    end = _absolute(second, "maintenance window end")
    if end <= start:
        raise InvalidInput(
            f"maintenance window {value!r} ends before it starts", "give the start first: START/END"
        )
    text = f"{_iso(start)}/{_iso(end)}"
    return OneOffWindow(text, start, end)


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%MZ" if utc.second == 0 else "%Y-%m-%dT%H:%M:%SZ")


def _days(text: str, window: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        start, stop = _day(first, window), _day(last or first, window)
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return frozenset(days)


def _day(name: str, window: str) -> int:
    if name not in _DAY_NAMES:
        raise InvalidInput(
            f"maintenance window {window!r}: {name!r} is not a day",
            "use Mon Tue Wed Thu Fri Sat Sun, ranges (Mon-Fri), lists (Sat,Sun) or daily",
        )
    return _DAY_NAMES[name]


def _days_text(days: frozenset[int]) -> str:
    """Monday-first runs: {0,1,2,3,4} -> "Mon-Fri", {5,6} -> "Sat,Sun"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = [[_DAYS[d].capitalize() for d in run] for run in runs]
    return ",".join(f"{n[0]}-{n[-1]}" if len(n) > 2 else ",".join(n) for n in names)


def _clock(text: str, window: str, allow_24: bool) -> tuple[time, str]:
    hours, minutes = (int(p) for p in text.split(":"))
    if allow_24 and (hours, minutes) == (24, 0):
        return time(0, 0), "24:00"
    if hours > 23 or minutes > 59:
        raise InvalidInput(
            f"maintenance window {window!r}: {text} is not a time of day",
            "use 00:00 to 23:59 (24:00 only as an end)",
        )
    return time(hours, minutes), f"{hours:02d}:{minutes:02d}"


def is_open(windows: Sequence[Window], now: datetime) -> bool:
    """Whether a mandatory run may start now; no windows at all means it always may."""
    now = _aware(now)
    if not windows:
        return True
    instant = now + timedelta(microseconds=1)
    return any(True for w in windows for _ in w.occurrences(now, instant))


def next_open(windows: Sequence[Window], now: datetime) -> datetime | None:
    """``now`` if a window is open, else when the next one opens; None if none ever will."""
    now = _aware(now)
    if is_open(windows, now):
        return now
    horizon = now + timedelta(days=8)  # every weekly window occurs within a week
    starts = [opens for w in windows for opens, _ in w.occurrences(now, horizon)]
    starts += [w.start for w in windows if isinstance(w, OneOffWindow) and w.start > horizon]
    later = [s for s in starts if s > now]
    return min(later) if later else None


# --------------------------------------------------------------------------- decisions


class Rerun(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    IF_FAILED = "if-failed"
    IF_SUCCEEDED = "if-succeeded"


def parse_rerun(text: str) -> Rerun:
    try:
        return Rerun(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"rerun behaviour {text!r} is not known", "use never, always, if-failed or if-succeeded"
        ) from None


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class LastRun:
    """The client's most recent finished attempt of this deployment."""

    result: Result
    source_version: int
    time: datetime  # when the attempt started, by the client's clock


_STATES = ("active", "paused", "cancelled")


@dataclass(frozen=True)
class DeploymentSchedule:
    """The time-related part of a deployment, as policy carries it."""

    available: datetime
    deadline: datetime | None = None
    expires: datetime | None = None
    rerun: Rerun = Rerun.IF_FAILED
    state: str = "active"
    override_maintenance: bool = False

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise InvalidInput(
                f"deployment state {self.state!r} is not known",
                "expected active, paused or cancelled",
            )
        for moment in (self.available, self.deadline, self.expires):
            if moment is not None:
                _aware(moment)

    @classmethod
    def from_policy(cls, entry: Mapping[str, Any]) -> DeploymentSchedule:
        """From a policy deployment entry (ISO 8601 strings, as docs/protocol.md shows)."""

        def moment(key: str) -> datetime | None:
            value = entry.get(key)
            return None if value in (None, "") else _absolute(str(value), key)

        available = moment("available")
        if available is None:
            raise InvalidInput("the deployment in policy has no available time")
        return cls(
            available,
            moment("deadline"),
            moment("expires"),
            parse_rerun(str(entry.get("rerun", "if-failed"))),
            str(entry.get("state", "active")),
            bool(entry.get("override_maintenance", False)),
        )


class Action(StrEnum):
    RUN = "run"
    WAIT = "wait"  # mandatory or requested, but not yet (see ``why`` and ``until``)
    AVAILABLE = "available"  # runs only when a user asks; ``until`` is the deadline, if any
    EXPIRED = "expired"
    SKIP = "skip"


class Why(StrEnum):
    DEADLINE = "deadline"
    REQUESTED = "requested"
    NOT_AVAILABLE_YET = "not_available_yet"
    MAINTENANCE_WINDOW = "maintenance_window"
    NOT_MANDATORY = "not_mandatory"
    EXPIRED = "expired"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    RERUN_RULE = "rerun_rule"


@dataclass(frozen=True)
class Decision:
    action: Action
    why: Why
    detail: str
    until: datetime | None = None  # the scheduled instant that changes the answer

    @property
    def wake_at(self) -> datetime | None:
        """When to decide again: the tolerance lets a client act this much early."""
        return None if self.until is None else self.until - CLOCK_TOLERANCE


def decide(
    schedule: DeploymentSchedule,
    last: LastRun | None,
    *,
    source_version: int,
    requested: bool = False,
    windows: Sequence[Window] = (),
    now: datetime,
) -> Decision:
    """What the client does with one deployment now (see the module docstring)."""
    now = _aware(now)
    if schedule.state != "active":
        why = Why.CANCELLED if schedule.state == "cancelled" else Why.PAUSED
        return Decision(Action.SKIP, why, f"the deployment is {schedule.state}")
    due = _due(schedule, last, source_version)
    allowed = due or _on_request(schedule.rerun, last, source_version)
    if not allowed:
        return Decision(Action.SKIP, Why.RERUN_RULE, _ran_detail(schedule.rerun, last))
    if schedule.expires is not None and now >= schedule.expires:
        if (
            last is not None
            and last.result is Result.SUCCEEDED
            and last.source_version == source_version
        ):
            return Decision(Action.SKIP, Why.EXPIRED, "expired after the program succeeded")
        return Decision(Action.EXPIRED, Why.EXPIRED, "the deployment expired", schedule.expires)
    if now + CLOCK_TOLERANCE < schedule.available:
        return Decision(Action.WAIT, Why.NOT_AVAILABLE_YET, "not available yet", schedule.available)
    if requested:
        return Decision(Action.RUN, Why.REQUESTED, "a user asked to run it")
    deadline = schedule.deadline
    if not due or deadline is None or now + CLOCK_TOLERANCE < deadline:
        until = deadline if due else None
        return Decision(
            Action.AVAILABLE,
            Why.NOT_MANDATORY,
            "available; runs when a user asks" + (" until the deadline" if until else ""),
            until,
        )
    return _mandatory(schedule, windows, now)


def _mandatory(schedule: DeploymentSchedule, windows: Sequence[Window], now: datetime) -> Decision:
    if (
        schedule.override_maintenance
        or is_open(windows, now)
        or is_open(windows, now + CLOCK_TOLERANCE)
    ):
        return Decision(Action.RUN, Why.DEADLINE, "the deadline has passed")
    opens = next_open(windows, now)
    if opens is None:
        return Decision(Action.WAIT, Why.MAINTENANCE_WINDOW, window_wait_text(None))
    late = schedule.expires is not None and opens >= schedule.expires
    note = ", after the deployment expires" if late else ""
    return Decision(
        Action.WAIT, Why.MAINTENANCE_WINDOW, window_wait_text(_iso(opens) + note), opens
    )


def window_wait_text(opens: str | None) -> str:
    """How the client and the site both say a mandatory run is held for a window."""
    if opens is None:
        return "waiting for a maintenance window (none opens again)"
    return f"waiting for a maintenance window (opens {opens})"


def window_time_text(text: str) -> str | None:
    """A window's opening time as a status message carries it (2026-12-05T22:00:00.000Z),
    written as window_wait_text's callers write it (2026-12-05T22:00Z); None if no time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _iso(moment) if moment.tzinfo is not None else None


def _due(schedule: DeploymentSchedule, last: LastRun | None, source_version: int) -> bool:
    """Whether the rerun rule makes this deployment run by itself at its deadline."""
    if last is None:
        return True
    succeeded = last.result is Result.SUCCEEDED
    rule = schedule.rerun
    if last.source_version != source_version:
        return not succeeded or rule in (Rerun.ALWAYS, Rerun.IF_SUCCEEDED)
    deadline = schedule.deadline
    new_cycle = deadline is not None and last.time < deadline - CLOCK_TOLERANCE
    return new_cycle and _rule_allows(rule, succeeded)


def _on_request(rule: Rerun, last: LastRun | None, source_version: int) -> bool:
    """Whether a user may run it again although it is not due."""
    if last is None or last.source_version != source_version:
        return False  # _due already covers these cases
    return _rule_allows(rule, last.result is Result.SUCCEEDED)


def _rule_allows(rule: Rerun, succeeded: bool) -> bool:
    return {
        Rerun.NEVER: False,
        Rerun.ALWAYS: True,
        Rerun.IF_FAILED: not succeeded,
        Rerun.IF_SUCCEEDED: succeeded,
    }[rule]


def _ran_detail(rule: Rerun, last: LastRun | None) -> str:
    if last is None:
        return f"rerun rule {rule} does not run it"
    return (
        f"already {last.result} with source version {last.source_version}; rerun rule "
        f"{rule} does not run it again"
    )
