"""Background jobs (site/jobs/) as the API answers them, and the 202 of a route that starts
one."""

from __future__ import annotations

from typing import Any

from quartermaster.site.api.schemas.common import Answer


class JobView(Answer):
    job_id: int
    kind: str  # snapshot.create, snapshot.update, distribution, validation, gc
    state: str  # queued, running, succeeded, failed
    target: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    reason: str
    owner: str
    attempts: int
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    created_by: str
    created: str
    started: str | None
    heartbeat: str | None
    finished: str | None


class JobList(Answer):
    jobs: list[JobView]


class PackageJob(JobView):
    """202 of `POST /packages`, `/packages/{id}/update` and `/packages/{id}/prune`."""

    package_id: str
    warnings: list[str] = []


class ValidationJob(JobView):
    """202 of `POST /dps/{name}/validate`."""

    dp: str
    versions_to_validate: int
