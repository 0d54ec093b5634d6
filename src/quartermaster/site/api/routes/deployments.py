"""Deployments, under `/api/v1/deployments`: create, list, status, schedule, pause, resume and
cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from quartermaster.site.api.schemas.common import MAX_INT, ObjectId
from quartermaster.site.api.schemas.deployments import (
    DeploymentBody,
    DeploymentCreated,
    DeploymentList,
    DeploymentStatus,
    ScheduleBody,
)
from quartermaster.site.deployments import preflight
from quartermaster.site.deployments.deployments import (
    cancel_deployment,
    create_from_request,
    deployment_status,
    list_deployments,
    pause_deployment,
    reschedule_deployment,
    resume_deployment,
)
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/deployments",
    response_model=DeploymentCreated,
    status_code=201,
    dependencies=[allow("deployment.create")],
)
def new_deployment(body: DeploymentBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        deployment_id = create_from_request(
            session,
            ctx.site_code,
            body.package_id,
            body.program,
            body.collection,
            **body.schedule(),
        )
    with ctx.db.session() as session:
        warnings = preflight.of_deployment(session, ctx.site_code, deployment_id).warnings
        return {**deployment_status(session, deployment_id, limit=0), "warnings": warnings}


@router.get("/deployments", response_model=DeploymentList, dependencies=[allow("deployment.read")])
def deployments(
    ctx: Ctx, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_INT)
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"deployments": list_deployments(session, limit, offset)}


@router.get(
    "/deployments/{deployment_id}/status",
    response_model=DeploymentStatus,
    dependencies=[allow("deployment.read")],
)
def deployment(
    deployment_id: ObjectId,
    ctx: Ctx,
    limit: int = Query(1000, ge=0, le=10000),
    offset: int = Query(0, ge=0, le=MAX_INT),
    state: str | None = Query(None, max_length=30),
    client: str | None = Query(None, max_length=255),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit, offset, state, client)


def _control(
    ctx: Ctx, deployment_id: ObjectId, action: Callable[[Session, str], None]
) -> dict[str, Any]:
    with ctx.db.session() as session:
        action(session, deployment_id)
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit=0)


@router.post(
    "/deployments/{deployment_id}/schedule",
    response_model=DeploymentStatus,
    dependencies=[allow("deployment.update")],
)
def deployment_schedule(deployment_id: ObjectId, body: ScheduleBody, ctx: Ctx) -> dict[str, Any]:
    return _control(
        ctx,
        deployment_id,
        lambda session, deployment: reschedule_deployment(
            session,
            deployment,
            available=body.available,
            deadline=body.deadline,
            expires=body.expires,
        ),
    )


@router.post(
    "/deployments/{deployment_id}/pause",
    response_model=DeploymentStatus,
    dependencies=[allow("deployment.update")],
)
def deployment_pause(deployment_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, pause_deployment)


@router.post(
    "/deployments/{deployment_id}/resume",
    response_model=DeploymentStatus,
    dependencies=[allow("deployment.update")],
)
def deployment_resume(deployment_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, resume_deployment)


@router.post(
    "/deployments/{deployment_id}/cancel",
    response_model=DeploymentStatus,
    dependencies=[allow("deployment.update")],
)
def deployment_cancel(deployment_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, cancel_deployment)
