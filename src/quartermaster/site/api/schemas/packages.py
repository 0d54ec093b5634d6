"""Packages: a new package (with its programs) and the DPs it goes to."""

from __future__ import annotations

from pydantic import Field

from quartermaster.site.api.schemas.common import Strict
from quartermaster.site.api.schemas.programs import ProgramBody


class PackageBody(Strict):
    name: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=4096)
    manufacturer: str = Field(default="", max_length=200)
    version_label: str = Field(default="", max_length=100)
    programs: list[ProgramBody] = Field(default_factory=list, max_length=100)


class DPNames(Strict):
    dps: list[str] = Field(min_length=1, max_length=1000)


class OneDP(Strict):
    dp: str = Field(min_length=1, max_length=100)
