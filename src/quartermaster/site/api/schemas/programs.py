"""A program of a package: the command line, its run context and its exit codes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quartermaster.core.program import ProgramSpec, check_run_as
from quartermaster.site.api.schemas.common import Answer, Strict


class ProgramBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    command: str = Field(min_length=1, max_length=8000)
    working_dir: str = Field(default="", max_length=1000)
    run_context: str = "system"
    max_runtime: int = 3600
    success_codes: list[int] = Field(default_factory=lambda: [0], max_length=100)
    reboot_codes: list[int] = Field(default_factory=lambda: [3010, 1641], max_length=100)
    retry_codes: list[int] = Field(default_factory=list, max_length=100)
    retry_count: int = 3
    retry_delay: int = 60
    requirements: dict[str, Any] = Field(default_factory=dict)

    def spec(self) -> ProgramSpec:
        check_run_as(self.run_context)  # a bare "user" (no account) is refused
        return ProgramSpec.from_dict(self.model_dump())


class ProgramAdded(Answer):
    package_id: str
    program: dict[str, Any]
