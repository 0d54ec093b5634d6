"""Starting jobs from the API: check what can be refused at once, record the job, wake the
runner. The answer is the job (202): its progress is at /api/v1/jobs/{job_id}."""

from __future__ import annotations

from typing import Any

from quartermaster.core.program import ProgramSpec
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import validation
from quartermaster.site.jobs import records
from quartermaster.site.jobs.kinds import SNAPSHOT_CREATE, SNAPSHOT_UPDATE, VALIDATION
from quartermaster.site.jobs.runner import runner_of


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
) -> dict[str, Any]:
    """The package's ID is given now (the answer carries it); the package and its version 1
    exist once the job succeeded. A refused name, program list or missing source folder
    costs no ID."""
    name = packages.check_new_package(ctx, name, source, programs, platform)
    package_id = packages.allocate_package_id(ctx)
    params = {
        "package_id": package_id,
        "name": name,
        "source": source,
        "programs": [spec.to_dict() for spec in programs],
        "manufacturer": manufacturer,
        "version_label": version_label,
        "platform": platform,
    }
    return {
        **_submit(ctx, SNAPSHOT_CREATE, package_id, params, created_by),
        "package_id": package_id,
    }


def update_package(ctx: SiteContext, package_id: str, created_by: str) -> dict[str, Any]:
    with ctx.db.session() as session:
        base = packages.get_package(session, package_id).current_version
    params = {"package_id": package_id, "base_version": base}
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
