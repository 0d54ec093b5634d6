"""Applications: a new application or revision, and a deployment of one."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quartermaster.core.detection_rules import MAX_RULES
from quartermaster.site.api.schemas.common import (
    MAX_INT,
    Answer,
    ObjectId,
    ScheduleArguments,
    Strict,
)
from quartermaster.site.applications import records

MAX_LINKS = 50


class RevisionBody(Strict):
    """A revision: the package version, programs (by name), detection and links."""

    package_id: ObjectId = Field(min_length=1, max_length=20)
    source_version: int | None = Field(default=None, ge=1, le=MAX_INT)
    install: str = Field(min_length=1, max_length=100)
    uninstall: str | None = Field(default=None, min_length=1, max_length=100)
    detect: list[str] = Field(min_length=1, max_length=MAX_RULES)
    detect_any: bool = False
    depends: list[str] = Field(default_factory=list, max_length=MAX_LINKS)
    supersedes: list[str] = Field(default_factory=list, max_length=MAX_LINKS)
    run_as: str = Field(default="system", max_length=100)
    requirements: dict[str, Any] | None = None
    require: str | None = Field(default=None, min_length=1, max_length=4000)
    reevaluate: int = Field(default=records.DEFAULT_REEVALUATE, ge=1, le=MAX_INT)

    def request(self) -> records.RevisionRequest:
        return records.RevisionRequest(
            package_id=self.package_id,
            install=self.install,
            detect=self.detect,
            detect_any=self.detect_any,
            uninstall=self.uninstall,
            depends=self.depends,
            supersedes=self.supersedes,
            run_as=self.run_as,
            requirements=self.requirements,
            require=self.require,
            source_version=self.source_version,
            reevaluate=self.reevaluate,
        )


class ApplicationBody(RevisionBody):
    name: str = Field(min_length=1, max_length=200)


class AppDeploymentBody(Strict, ScheduleArguments):
    """Times as for a program's deployment (``now``, ``+2h``, ISO 8601 with a zone)."""

    app_id: ObjectId = Field(min_length=1, max_length=20)
    collection: str = Field(min_length=1, max_length=200)
    purpose: str = Field(default="install", max_length=20)
    available: str | None = Field(default=None, min_length=1, max_length=100)
    deadline: str | None = Field(default=None, min_length=1, max_length=100)
    expires: str | None = Field(default=None, min_length=1, max_length=100)
    rerun: str = Field(default="if-failed", max_length=20)
    override_maintenance: bool = False
    phases: str | None = Field(default=None, min_length=1, max_length=100)
    success_threshold: int | None = Field(default=None, ge=0, le=100)
    error_threshold: int | None = Field(default=None, ge=0, le=100)


class ApplicationDetail(Answer):
    app_id: str
    name: str
    current_revision: int
    created: str
    revisions: list[dict[str, Any]]


class ApplicationSummary(Answer):
    app_id: str
    name: str
    current_revision: int
    package_id: str
    source_version: int
    detection: dict[str, Any]
    run_as: str


class ApplicationList(Answer):
    applications: list[ApplicationSummary]


class ApplicationStatus(Answer):
    app_id: str
    name: str
    current_revision: int
    counts: dict[str, int]
    clients: list[dict[str, Any]]
