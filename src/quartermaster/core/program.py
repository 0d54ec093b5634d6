"""A program (install command line) and what its exit codes mean: shared by site and client."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from quartermaster.core.errors import InvalidInput

SOFT_REBOOT, HARD_REBOOT = 3010, 1641


class Outcome(StrEnum):
    SUCCESS = "success"
    SUCCESS_REBOOT = "success_reboot"
    RETRY = "retry"
    FAILURE = "failure"


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    command: str
    working_dir: str = ""  # relative to the package folder; "" is the package folder itself
    run_context: str = "system"  # "system" or "user"
    max_runtime: int = 3600  # seconds
    success_codes: tuple[int, ...] = (0,)
    reboot_codes: tuple[int, ...] = (SOFT_REBOOT, HARD_REBOOT)
    retry_codes: tuple[int, ...] = ()
    retry_count: int = 3
    retry_delay: int = 60  # seconds before the first retry; doubles each time
    requirements: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100 or "/" in self.name:
            raise InvalidInput(f"program name {self.name!r} is not valid",
                               "use 1 to 100 characters without '/'")
        if not self.command.strip():
            raise InvalidInput("a program needs a command line", "pass --command 'CMD'")
        if self.run_context not in ("system", "user"):
            raise InvalidInput(f"run context {self.run_context!r} is not valid",
                               "use 'system' or 'user'")
        if not 1 <= self.max_runtime <= 7 * 24 * 3600:
            raise InvalidInput("maximum run time must be between 1 second and 7 days")
        if not 0 <= self.retry_count <= 100 or not 0 <= self.retry_delay <= 86400:
            raise InvalidInput("retry count must be 0-100 and retry delay 0-86400 seconds")
        overlap = set(self.success_codes) & (set(self.retry_codes) | set(self.reboot_codes))
        if overlap or set(self.retry_codes) & set(self.reboot_codes):
            raise InvalidInput("an exit code may have only one meaning",
                               "list each code in one of success, reboot or retry codes")

    def classify(self, exit_code: int) -> Outcome:
        if exit_code in self.success_codes:
            return Outcome.SUCCESS
        if exit_code in self.reboot_codes:
            return Outcome.SUCCESS_REBOOT
        if exit_code in self.retry_codes:
            return Outcome.RETRY
        return Outcome.FAILURE

    @staticmethod
    def reboot_kind(exit_code: int) -> str:
        return "hard" if exit_code == HARD_REBOOT else "soft"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("success_codes", "reboot_codes", "retry_codes"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("success_codes", "reboot_codes", "retry_codes"):
            if key in known:
                known[key] = tuple(int(c) for c in known[key])
        return cls(**known)


def parse_codes(text: str) -> tuple[int, ...]:
    """'0,3010' -> (0, 3010); a clear error for anything else."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(f"exit codes {text!r} are not a comma-separated list of integers",
                           "e.g. --success-codes 0,3010") from None
