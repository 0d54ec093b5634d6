"""The distribution point API, `/api/dp/v1`: see docs/protocol.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from quartermaster.core.errors import Unauthorized
from quartermaster.site.api.schemas.dp_api import (
    Assignments,
    EnrollBody,
    Enrolled,
    ReportAccepted,
    ReportBody,
)
from quartermaster.site.content import manifests
from quartermaster.site.distribution import assignment, dp_reports, enrollment, points
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.web.access import CheckedRoute, Ctx, allow, require

router = APIRouter(prefix="/api/dp/v1", route_class=CheckedRoute)


def _dp_id(action: str) -> Callable[..., int]:
    """The authenticated DP's database ID, once `action` is allowed for it."""
    requirement = require(action)

    # A default, not Annotated: a string annotation cannot name this closure variable.
    def dp_id(principal: Principal = Depends(requirement)) -> int:  # noqa: B008
        if principal.dp_id is None:
            raise Unauthorized("this request needs a DP credential")
        return principal.dp_id

    return dp_id


SyncingDP = Annotated[int, Depends(_dp_id("dp_api.sync"))]


ReportingDP = Annotated[int, Depends(_dp_id("dp_api.report"))]


@router.post("/enroll", response_model=Enrolled, dependencies=[allow("dp_api.enroll")])
def enroll(body: EnrollBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp, credential = enrollment.enroll(session, body.enrollment_token, body.url)
        name = dp.name
    return {
        "dp": name,
        "credential": credential,
        "site_code": ctx.site_code,
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
    }


@router.get("/assignments", response_model=Assignments)
def assignments(dp_id: SyncingDP, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.dp_by_id(session, dp_id)
        answer = assignment.assignments(ctx, session, dp)
    answer["signing_keys"] = ctx.key.key_list_envelope(ctx.site_code)  # DPs follow rotations
    return answer


@router.get("/manifests/{package_hash}")
def manifest(package_hash: str, _: SyncingDP, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return manifests.manifest_envelope(session, package_hash)


@router.post("/report", response_model=ReportAccepted)
def report(body: ReportBody, dp_id: ReportingDP, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.dp_by_id(session, dp_id)
        dp_reports.record_report(session, dp, body.model_dump())
    return {"ok": True}
