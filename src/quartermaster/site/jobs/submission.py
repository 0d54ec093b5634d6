"""Starting jobs from the API: check what can be refused at once, record the job, wake the
runner. The answer is the job (202): its progress is at /api/v1/jobs/{job_id}."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from quartermaster.core.errors import Conflict
from quartermaster.core.manifest import check_outside_links
from quartermaster.core.program import ProgramSpec
from quartermaster.site.content import packages
from quartermaster.site.content.retention import check_keep
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import validation
from quartermaster.site.jobs import records
from quartermaster.site.jobs.kinds import (
    GARBAGE_COLLECTION,
    LIBRARY,
    SNAPSHOT_CREATE,
    SNAPSHOT_UPDATE,
    VALIDATION,
)
from quartermaster.site.jobs.runner import runner_of
from quartermaster.site.models import Job


def _submit(
    ctx: SiteContext, kind: str, target: str, params: dict[str, Any], created_by: str
) -> dict[str, Any]:
    with ctx.db.session() as session:
        answer = records.job_dict(records.submit(session, kind, target, params, created_by))
    runner_of(ctx).kick()
    return answer


def create_package(
    ctx: SiteContext,
    name: str,
    source: str,
    programs: list[ProgramSpec],
    manufacturer: str,
    version_label: str,
    platform: str,
    created_by: str,
    outside_links: str = "refuse",
) -> dict[str, Any]:
    """The package's ID is given now (the answer carries it); the package and its version 1
    exist once the job succeeded. A refused name, program list or missing source folder
    costs no ID."""
    name = packages.check_new_package(ctx, name, source, programs, platform, outside_links)
    package_id = packages.allocate_package_id(ctx)
    params = {
        "package_id": package_id,
        "name": name,
        "source": source,
        "programs": [spec.to_dict() for spec in programs],
        "manufacturer": manufacturer,
        "version_label": version_label,
        "platform": platform,
        "outside_links": outside_links,
    }
    return {
        **_submit(ctx, SNAPSHOT_CREATE, package_id, params, created_by),
        "package_id": package_id,
    }


def update_package(
    ctx: SiteContext, package_id: str, created_by: str, outside_links: str | None = None
) -> dict[str, Any]:
    if outside_links is not None:
        check_outside_links(outside_links)
    with ctx.db.session() as session:
        base = packages.get_package(session, package_id).current_version
    params: dict[str, Any] = {"package_id": package_id, "base_version": base}
    if outside_links is not None:
        params["outside_links"] = outside_links
    return {
        **_submit(ctx, SNAPSHOT_UPDATE, package_id, params, created_by),
        "package_id": package_id,
    }


def validate_dp(
    ctx: SiteContext, dp_name: str, package_id: str | None, created_by: str
) -> dict[str, Any]:
    count = validation.validate_dp(ctx, dp_name, package_id)
    params = {"dp": dp_name, "package_id": package_id}
    job = _submit(ctx, VALIDATION, dp_name, params, created_by)
    return {**job, "dp": dp_name, "versions_to_validate": count}


def prune_package(
    ctx: SiteContext, package_id: str, keep: int | None, created_by: str
) -> dict[str, Any]:
    """A garbage collection that first applies the package's retention (`keep` from now on,
    if given). Refused while one of this package is queued or running."""
    check_keep(keep)
    with ctx.db.session() as session:
        packages.get_package(session, package_id)  # a missing package costs no job
    params = {"package_id": package_id, "keep": keep}
    job = submit_garbage_collection(ctx, package_id, params, created_by)
    if job is None:
        raise Conflict(
            f"a garbage collection of {package_id} is already queued or running: job "
            f"{_open_gc_job(ctx, package_id)}",
            "wait for it with `qm job wait`, then prune again if needed",
        )
    return {**job, "package_id": package_id}


def collect_garbage(ctx: SiteContext, created_by: str) -> dict[str, Any] | None:
    """A sweep of the library; None when one is already queued or running (by any site
    process: the database refuses a second)."""
    return submit_garbage_collection(ctx, LIBRARY, {}, created_by)


def submit_garbage_collection(
    ctx: SiteContext, target: str, params: dict[str, Any], created_by: str
) -> dict[str, Any] | None:
    try:
        return _submit(ctx, GARBAGE_COLLECTION, target, params, created_by)
    except IntegrityError:  # ux_jobs_one_open_gc: one is queued or running
        return None


def _open_gc_job(ctx: SiteContext, target: str) -> int | None:
    with ctx.db.session() as session:
        return session.scalar(
            select(Job.id).where(
                Job.kind == GARBAGE_COLLECTION,
                Job.target == target,
                Job.state.in_((records.QUEUED, records.RUNNING)),
            )
        )
