"""UTC times as the protocol writes them: ISO 8601 with a Z, parsed back into aware datetimes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from quartermaster.core.errors import InvalidInput

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_utc(value: str) -> datetime:
    """A time from policy or local state; a time without a zone is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise InvalidInput(f"time {value!r} is not ISO 8601", "the site sends UTC with Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_optional(value: object) -> datetime | None:
    return None if value in (None, "") else parse_utc(str(value))


def format_utc(value: datetime) -> str:
    """Milliseconds and a Z: the form status messages carry."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_optional(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)
