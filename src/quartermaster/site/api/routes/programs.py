"""Programs of a package, under `/api/v1/packages/{package_id}/programs`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from quartermaster.site.api.schemas.common import ObjectId
from quartermaster.site.api.schemas.programs import ProgramAdded, ProgramBody
from quartermaster.site.content import packages
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/packages/{package_id}/programs",
    response_model=ProgramAdded,
    status_code=201,
    dependencies=[allow("program.create")],
)
def add_program(package_id: ObjectId, body: ProgramBody, ctx: Ctx) -> dict[str, Any]:
    return packages.add_program(ctx, package_id, body.spec())
