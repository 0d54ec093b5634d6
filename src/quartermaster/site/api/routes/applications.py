"""Applications, under `/api/v1/applications`, and deployments of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from quartermaster.site.api.schemas.applications import (
    AppDeploymentBody,
    ApplicationBody,
    ApplicationDetail,
    ApplicationList,
    ApplicationStatus,
    RevisionBody,
)
from quartermaster.site.api.schemas.common import MAX_INT, ObjectId
from quartermaster.site.api.schemas.deployments import DeploymentStatus
from quartermaster.site.applications import compliance, records
from quartermaster.site.deployments.deployments import create_app_from_request, deployment_status
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.post(
    "/applications",
    response_model=ApplicationDetail,
    status_code=201,
    dependencies=[allow("application.create")],
)
def create_application(body: ApplicationBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        app_id = records.create_application(session, ctx.site_code, body.name, body.request())
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.post(
    "/applications/{app_id}/revisions",
    response_model=ApplicationDetail,
    status_code=201,
    dependencies=[allow("application.update")],
)
def revise_application(app_id: ObjectId, body: RevisionBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        records.revise_application(session, app_id, body.request())
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.get(
    "/applications", response_model=ApplicationList, dependencies=[allow("application.read")]
)
def list_applications(
    ctx: Ctx, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_INT)
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"applications": records.list_applications(session, limit, offset)}


@router.get(
    "/applications/{app_id}",
    response_model=ApplicationDetail,
    dependencies=[allow("application.read")],
)
def show_application(app_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.get(
    "/applications/{app_id}/status",
    response_model=ApplicationStatus,
    dependencies=[allow("application.read")],
)
def application_status(app_id: ObjectId, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return compliance.application_status(session, app_id)


@router.post(
    "/application-deployments",
    response_model=DeploymentStatus,
    status_code=201,
    dependencies=[allow("deployment.create")],
)
def deploy_application(body: AppDeploymentBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        deployment_id = create_app_from_request(
            session,
            ctx.site_code,
            body.app_id,
            body.collection,
            purpose=body.purpose,
            **body.schedule(),
        )
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit=0)
