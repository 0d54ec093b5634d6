"""Deployments of a package's program: a new one and a new schedule."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quartermaster.site.api.schemas.collections import CollectionName
from quartermaster.site.api.schemas.common import (
    Answer,
    ObjectId,
    ScheduleArguments,
    Strict,
    TimeText,
)


class DeploymentBody(Strict, ScheduleArguments):
    """Times are what an administrator types (``now``, ``+2h``, ISO 8601 with a zone)."""

    package_id: ObjectId = Field(min_length=1, max_length=20)
    program: str = Field(min_length=1, max_length=100)
    collection: CollectionName
    available: TimeText | None = None
    deadline: TimeText | None = None
    expires: TimeText | None = None
    rerun: str = Field(default="if-failed", max_length=20)
    override_maintenance: bool = False
    phases: str | None = Field(default=None, min_length=1, max_length=100)
    success_threshold: int | None = Field(default=None, ge=0, le=100)
    error_threshold: int | None = Field(default=None, ge=0, le=100)


class ScheduleBody(Strict):
    """New times (``now``, ``+2h``, ISO 8601 with a zone); ``none`` clears deadline/expiry."""

    available: TimeText | None = None
    deadline: TimeText | None = None
    expires: TimeText | None = None


class DeploymentSummary(Answer):
    deployment_id: str
    package_id: str | None
    program: str
    app_id: str | None
    purpose: str | None
    collection_id: int
    collection: str
    available: str
    deadline: str | None
    expires: str | None
    rerun: str
    state: str
    override_maintenance: bool
    phases: dict[str, Any] | None
    created: str


class DeploymentStatus(DeploymentSummary):
    targeted: int
    counts: dict[str, int]
    compliance: dict[str, Any] | None
    state_reason: Any
    rollout: Any
    # bytes downloaded by source: peer, boundary (DPs), fallback (DPs)
    content_sources: dict[str, int] = {}
    clients: list[dict[str, Any]]


class DeploymentCreated(DeploymentStatus):
    """The new deployment and what may hurt it (content on no DP of its targets, empty
    phases, no members): the same warnings the console shows before it is confirmed."""

    warnings: list[str] = []


class DeploymentList(Answer):
    deployments: list[DeploymentSummary]
