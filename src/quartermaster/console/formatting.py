"""How the console writes sizes, times and states: short, exact on hover, the same everywhere."""

from __future__ import annotations

from datetime import datetime

from quartermaster.site.models import utcnow

STATE_LABELS = {
    "succeeded": "Succeeded",
    "in_progress": "In progress",
    "failed": "Failed",
    "unknown": "Unknown",
    "requirements_not_met": "Requirements not met",
    "installed": "Installed",
    "distributing": "Distributing",
    "pending": "Pending",
    "validation_failed": "Validation failed",
    "active": "Active",
    "paused": "Paused",
    "cancelled": "Cancelled",
    "retired": "Retired",
    "approved": "Approved",
    "blocked": "Blocked",
    "informational": "Info",
    "warning": "Warning",
    "error": "Error",
}
#: The tone of a state's badge: ok (green), info (blue), bad (red), warn (amber), muted.
STATE_TONES = {
    "succeeded": "ok",
    "installed": "ok",
    "active": "ok",
    "approved": "ok",
    "in_progress": "info",
    "distributing": "info",
    "pending": "muted",
    "informational": "muted",
    "failed": "bad",
    "validation_failed": "bad",
    "error": "bad",
    "blocked": "bad",
    "requirements_not_met": "warn",
    "paused": "warn",
    "warning": "warn",
    "unknown": "muted",
    "cancelled": "muted",
    "retired": "muted",
}


def size(value: int | None) -> str:
    """Bytes in binary units with three significant digits: 1.46 GiB."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{int(amount)} B" if unit == "B" else f"{amount:.3g} {unit}"
        amount /= 1024
    return f"{amount:.3g} TiB"


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def when(value: str | datetime | None) -> str:
    """An exact UTC time, to the second."""
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def ago(value: str | datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: 5 s, 3 min, 2 h, 4 d."""
    moment = _parse(value)
    if moment is None:
        return "never"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit}"
    return f"{seconds} s"


def label(state: str | None) -> str:
    if not state:
        return "—"
    return STATE_LABELS.get(state, state.replace("_", " ").capitalize())


def tone(state: str | None) -> str:
    return STATE_TONES.get(state or "", "muted")


def percent(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.0f}%" if whole else "0%"


def short_hash(value: str | None, length: int = 12) -> str:
    return value[:length] if value else "—"


FILTERS = {
    "size": size,
    "when": when,
    "ago": ago,
    "label": label,
    "tone": tone,
    "short_hash": short_hash,
}
