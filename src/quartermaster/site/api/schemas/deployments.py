"""Deployments of a package's program: a new one and a new schedule."""

from __future__ import annotations

from pydantic import Field

from quartermaster.site.api.schemas.collections import CollectionName
from quartermaster.site.api.schemas.common import ObjectId, Strict, TimeText


class DeploymentBody(Strict):
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
