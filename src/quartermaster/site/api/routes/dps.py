"""Distribution points, under `/api/v1/dps`: add, list, content, validate, retire and re-enroll."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from quartermaster.site.api.routes.jobs import accepted, caller
from quartermaster.site.api.schemas.dps import (
    DPBody,
    DPContent,
    DPEnrollment,
    DPList,
    DPState,
    ValidateBody,
)
from quartermaster.site.api.schemas.jobs import ValidationJob
from quartermaster.site.distribution import points
from quartermaster.site.distribution.health import all_dp_health
from quartermaster.site.jobs import submission
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/dps", response_model=DPEnrollment, status_code=201, dependencies=[allow("dp.create")]
)
def add_dp(body: DPBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        token = points.add_dp(session, body.name, body.url, body.boundaries, body.fallback)
    return {"name": body.name, "enrollment_token": token}


@router.get("/dps", response_model=DPList, dependencies=[allow("dp.read")])
def dps(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        found = points.list_dps(session)
        health = all_dp_health(session, found)
    return {"dps": [{**dp, "health": health[dp["name"]].to_dict()} for dp in found]}


@router.get("/dps/{name}/content", response_model=DPContent, dependencies=[allow("dp.read")])
def dp_content(name: str, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.get_dp(session, name)
        return {"dp": name, "content": points.dp_content(session, dp)}


@router.post(
    "/dps/{name}/validate",
    response_model=ValidationJob,
    status_code=202,
    dependencies=[allow("dp.validate")],
)
def validate_dp(
    name: str, body: ValidateBody, ctx: Ctx, request: Request, response: Response
) -> dict[str, Any]:
    """Ask the DP to re-hash; a job follows it until the DP reported every version."""
    job = submission.validate_dp(ctx, name, body.package_id, caller(request))
    return accepted(response, job)


DPNamePath = Annotated[str, Path(min_length=1, max_length=100)]


@router.post("/dps/{name}/retire", response_model=DPState, dependencies=[allow("dp.retire")])
def retire_dp(name: DPNamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.retire_dp(session, name)
        answer = {"name": dp.name, "state": dp.state}
    ctx.distribution_changed()
    return answer


@router.post(
    "/dps/{name}/reenroll", response_model=DPEnrollment, dependencies=[allow("dp.reenroll")]
)
def reenroll_dp(name: DPNamePath, ctx: Ctx) -> dict[str, Any]:
    """A new one-time enrollment token; the DP's current credential stops working now."""
    with ctx.db.session() as session:
        token = points.reenroll_dp(session, name)
    return {"name": name, "enrollment_token": token}
