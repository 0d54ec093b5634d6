"""A program (install command line) and what its exit codes mean: shared by site and client."""

from __future__ import annotations

import os
import re
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
    run_context: str = "system"  # "system" or "user:NAME" (client/run_as.py)
    max_runtime: int = 3600  # seconds
    success_codes: tuple[int, ...] = (0,)
    reboot_codes: tuple[int, ...] = (SOFT_REBOOT, HARD_REBOOT)
    retry_codes: tuple[int, ...] = ()
    retry_count: int = 3
    retry_delay: int = 60  # seconds before the first retry; doubles each time
    requirements: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100 or "/" in self.name:
            raise InvalidInput(
                f"program name {self.name!r} is not valid", "use 1 to 100 characters without '/'"
            )
        if not self.command.strip():
            raise InvalidInput("a program needs a command line", "pass --command 'CMD'")
        if self.run_context != "user":  # a stored legacy value; the client refuses to run it
            check_run_as(self.run_context)
        if not 1 <= self.max_runtime <= 7 * 24 * 3600:
            raise InvalidInput("maximum run time must be between 1 second and 7 days")
        if not 0 <= self.retry_count <= 100 or not 0 <= self.retry_delay <= 86400:
            raise InvalidInput("retry count must be 0-100 and retry delay 0-86400 seconds")
        listed = [*self.success_codes, *self.reboot_codes, *self.retry_codes]
        if len(set(listed)) != len(listed):
            raise InvalidInput(
                "an exit code may have only one meaning",
                "list each code once, in one of success, reboot or retry codes",
            )
        low = [code & 0xFF for code in listed if code > 255]
        if len(set(low)) != len(low):
            raise InvalidInput(
                "two listed codes above 255 share their low 8 bits, which is all "
                "a POSIX exit status keeps",
                "list only one of them",
            )

    def meaning(self, exit_code: int, posix: bool = os.name == "posix") -> int:
        """The listed code an exit status stands for.

        A POSIX exit status has 8 bits, so a program there that exits 3010 is seen as 194.
        On POSIX a listed code above 255 therefore also matches its low 8 bits, unless the
        status itself is listed (an exact match always wins).
        """
        listed = (*self.success_codes, *self.reboot_codes, *self.retry_codes)
        if exit_code in listed or not posix or not 0 <= exit_code <= 255:
            return exit_code
        wide = [code for code in listed if code > 255 and code & 0xFF == exit_code]
        return wide[0] if wide else exit_code

    def exit_code_text(self, exit_code: int, posix: bool = os.name == "posix") -> str:
        """The exit code as the administrator listed it, for status messages: a status of 82
        that stands for a listed 1618 says 1618, and why the computer saw 82."""
        listed = self.meaning(exit_code, posix)
        if listed == exit_code:
            return str(exit_code)
        return (
            f"{listed} (seen as exit status {exit_code}: a POSIX exit status keeps only the "
            f"low 8 bits, and {listed} mod 256 = {exit_code})"
        )

    def classify(self, exit_code: int, posix: bool = os.name == "posix") -> Outcome:
        code = self.meaning(exit_code, posix)
        if code in self.success_codes:
            return Outcome.SUCCESS
        if code in self.reboot_codes:
            return Outcome.SUCCESS_REBOOT
        if code in self.retry_codes:
            return Outcome.RETRY
        return Outcome.FAILURE

    def reboot_kind(self, exit_code: int, posix: bool = os.name == "posix") -> str:
        return "hard" if self.meaning(exit_code, posix) == HARD_REBOOT else "soft"

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


_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?", re.IGNORECASE)


def check_run_as(text: str) -> str:
    """``system`` (the agent's own account) or ``user:NAME`` (a named local account)."""
    if text == "system":
        return text
    kind, _, name = text.partition(":")
    if kind == "user" and _ACCOUNT.fullmatch(name):
        return text
    raise InvalidInput(
        f"run as {text!r} is not valid",
        "use 'system' or 'user:NAME' with a local account name, e.g. user:alice",
    )


def parse_codes(text: str) -> tuple[int, ...]:
    """'0,3010' -> (0, 3010); a clear error for anything else."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(
            f"exit codes {text!r} are not a comma-separated list of integers",
            "e.g. --success-codes 0,3010",
        ) from None
