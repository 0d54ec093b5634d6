"""Packages, under `/api/v1/packages`: create, list, show, update from source, and which DPs
hold them, and retention (prune)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from quartermaster.site.api.routes.jobs import accepted, caller
from quartermaster.site.api.schemas.common import MAX_INT, ObjectId
from quartermaster.site.api.schemas.jobs import PackageJob
from quartermaster.site.api.schemas.packages import (
    DPNames,
    OneDP,
    PackageBody,
    PackageDetail,
    PackageList,
    PackageUpdateBody,
    PruneBody,
)
from quartermaster.site.content import packages
from quartermaster.site.deployments import approvals
from quartermaster.site.jobs import submission
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/packages",
    response_model=PackageJob,
    status_code=202,
    dependencies=[allow("package.create")],
)
def create_package(
    body: PackageBody, ctx: Ctx, request: Request, response: Response
) -> dict[str, Any]:
    """Snapshot the source as version 1 in a job (docs/protocol.md, "Jobs")."""
    job = submission.create_package(
        ctx,
        body.name,
        body.source,
        [p.spec() for p in body.programs],
        body.manufacturer,
        body.version_label,
        body.platform,
        caller(request),
        body.outside_links,
    )
    warnings = packages.same_name_warnings(ctx, body.name, body.version_label)
    return {**accepted(response, job), "warnings": warnings}


@router.get("/packages", response_model=PackageList, dependencies=[allow("package.read")])
def list_packages(
    ctx: Ctx,
    search: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    return {"packages": packages.list_packages(ctx, search, limit, offset)}


@router.get(
    "/packages/{package_id}", response_model=PackageDetail, dependencies=[allow("package.read")]
)
def show_package(package_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    shown = packages.show_package(ctx, package_id)
    return {**shown, "approvals": approvals.package_approvals(ctx, shown["package_id"])}


@router.post(
    "/packages/{package_id}/update",
    response_model=PackageJob,
    status_code=202,
    dependencies=[allow("package.update")],
)
def update_package(
    package_id: ObjectId,
    ctx: Ctx,
    request: Request,
    response: Response,
    body: PackageUpdateBody | None = None,
) -> dict[str, Any]:
    """Snapshot the source again in a job; a new version only if something changed."""
    choice = body.outside_links if body is not None else None
    return accepted(response, submission.update_package(ctx, package_id, caller(request), choice))


@router.post(
    "/packages/{package_id}/distribute",
    response_model=PackageDetail,
    dependencies=[allow("package.distribute")],
)
def distribute(package_id: ObjectId, body: DPNames, ctx: Ctx) -> dict[str, Any]:
    return packages.distribute_package(ctx, package_id, body.dps)


@router.post(
    "/packages/{package_id}/remove-dp",
    response_model=PackageDetail,
    dependencies=[allow("package.remove_dp")],
)
def remove_dp(package_id: ObjectId, body: DPNames, ctx: Ctx) -> dict[str, Any]:
    return packages.remove_package_from_dps(ctx, package_id, body.dps)


@router.post(
    "/packages/{package_id}/redistribute",
    response_model=PackageDetail,
    dependencies=[allow("package.distribute")],
)
def redistribute(package_id: ObjectId, body: OneDP, ctx: Ctx) -> dict[str, Any]:
    """The DP re-hashes its copy and fetches again whatever is missing or damaged."""
    return packages.redistribute(ctx, package_id, body.dp)


@router.post(
    "/packages/{package_id}/prune",
    response_model=PackageJob,
    status_code=202,
    dependencies=[allow("package.prune")],
)
def prune_package(
    package_id: ObjectId, body: PruneBody, ctx: Ctx, request: Request, response: Response
) -> dict[str, Any]:
    """Apply the package's retention and sweep the library, in a `gc` job (its result is
    site/content/retention.py's prune_package)."""
    job = submission.prune_package(ctx, package_id, body.keep, caller(request))
    return accepted(response, job)
