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


class DPNames(Strict):
    dps: list[str] = Field(min_length=1, max_length=1000)


class OneDP(Strict):
    dp: str = Field(min_length=1, max_length=100)


class PackageCreated(Answer):
    package_id: str
    source_version: int


class PackageUpdated(PackageCreated):
    changed: bool  # false: the source had not changed, no new version


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
    versions: list[PackageVersionView]
    programs: list[dict[str, Any]]
    distribution: list[PackageOnDP]


class PackageList(Answer):
    packages: list[PackageSummary]


class PruneBody(Strict):
    keep: int | None = Field(default=None, ge=1, le=1000)  # retention.MAX_KEEP


class PruneResult(Answer):
    package_id: str
    keep_versions: int
    kept: list[int]  # source versions kept
    pruned: list[int]  # source versions pruned now
    library: dict[str, int]  # what the library sweep deleted: blobs, bytes, manifests, temps
