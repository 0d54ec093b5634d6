"""Packages: a new package (with its programs) and the DPs it goes to."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quartermaster.core.manifest import DEFAULT_PLATFORM
from quartermaster.site.api.schemas.common import Answer, Strict
from quartermaster.site.api.schemas.programs import ProgramBody


class PackageBody(Strict):
    name: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=4096)
    manufacturer: str = Field(default="", max_length=200)
    version_label: str = Field(default="", max_length=100)
    programs: list[ProgramBody] = Field(default_factory=list, max_length=100)
    platform: str = Field(default=DEFAULT_PLATFORM, max_length=20)  # any|windows|linux|macos
    outside_links: str = Field(default="refuse", max_length=10)  # refuse|skip


class PackageUpdateBody(Strict):
    outside_links: str | None = Field(default=None, max_length=10)  # refuse|skip


class DPNames(Strict):
    dps: list[str] = Field(min_length=1, max_length=1000)


class OneDP(Strict):
    dp: str = Field(min_length=1, max_length=100)


class PackageSummary(Answer):
    package_id: str
    name: str
    manufacturer: str
    version_label: str
    source_path: str
    source_version: int
    created: str
    updated: str


class PackageVersionView(Answer):
    source_version: int
    package_hash: str
    file_count: int
    total_size: int
    created: str


class PackageOnDP(Answer):
    dp: str
    source_version: int
    state: str
    bytes_done: int
    bytes_total: int
    reason: str
    updated: str


class PackageDetail(PackageSummary):
    platform: str = DEFAULT_PLATFORM  # of the current version's manifest
    outside_links: str = "refuse"
    versions: list[PackageVersionView]
    programs: list[dict[str, Any]]
    distribution: list[PackageOnDP]


class PackageList(Answer):
    packages: list[PackageSummary]


class PruneBody(Strict):
    keep: int | None = Field(default=None, ge=1, le=1000)  # retention.MAX_KEEP
