"""The admin API of applications, `/api/v1/applications` and deployments of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.core.detection_rules import MAX_RULES
from quartermaster.site.api.common import AuditedRoute, Ctx, allow
from quartermaster.site.applications import compliance, records
from quartermaster.site.deployments.deployments import create_app_from_request, deployment_status

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)
MAX_INT = 2**31 - 1
MAX_LINKS = 50


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RevisionBody(Strict):
    """A revision: the package version, programs (by name), detection and links."""

    package_id: str = Field(min_length=1, max_length=20)
    source_version: int | None = Field(default=None, ge=1, le=MAX_INT)
    install: str = Field(min_length=1, max_length=100)
    uninstall: str | None = Field(default=None, min_length=1, max_length=100)
    detect: list[str] = Field(min_length=1, max_length=MAX_RULES)
    detect_any: bool = False
    depends: list[str] = Field(default_factory=list, max_length=MAX_LINKS)
    supersedes: list[str] = Field(default_factory=list, max_length=MAX_LINKS)
    run_as: str = Field(default="system", max_length=100)
    requirements: dict[str, Any] | None = None
    require: str | None = Field(default=None, min_length=1, max_length=4000)
    reevaluate: int = Field(default=records.DEFAULT_REEVALUATE, ge=1, le=MAX_INT)

    def request(self) -> records.RevisionRequest:
        return records.RevisionRequest(
            package_id=self.package_id,
            install=self.install,
            detect=self.detect,
            detect_any=self.detect_any,
            uninstall=self.uninstall,
            depends=self.depends,
            supersedes=self.supersedes,
            run_as=self.run_as,
            requirements=self.requirements,
            require=self.require,
            source_version=self.source_version,
            reevaluate=self.reevaluate,
        )


class ApplicationBody(RevisionBody):
    name: str = Field(min_length=1, max_length=200)


@router.post("/applications", status_code=201, dependencies=[allow("application.create")])
def create_application(body: ApplicationBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        app_id = records.create_application(session, ctx.site_code, body.name, body.request())
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.post(
    "/applications/{app_id}/revisions",
    status_code=201,
    dependencies=[allow("application.update")],
)
def revise_application(app_id: str, body: RevisionBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        records.revise_application(session, app_id, body.request())
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.get("/applications", dependencies=[allow("application.read")])
def list_applications(
    ctx: Ctx, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_INT)
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"applications": records.list_applications(session, limit, offset)}


@router.get("/applications/{app_id}", dependencies=[allow("application.read")])
def show_application(app_id: str, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return records.show_application(session, app_id)


@router.get("/applications/{app_id}/status", dependencies=[allow("application.read")])
def application_status(app_id: str, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return compliance.application_status(session, app_id)


class AppDeploymentBody(Strict):
    """Times as for a program's deployment (``now``, ``+2h``, ISO 8601 with a zone)."""

    app_id: str = Field(min_length=1, max_length=20)
    collection: str = Field(min_length=1, max_length=200)
    purpose: str = Field(default="install", max_length=20)
    available: str | None = Field(default=None, min_length=1, max_length=100)
    deadline: str | None = Field(default=None, min_length=1, max_length=100)
    expires: str | None = Field(default=None, min_length=1, max_length=100)
    rerun: str = Field(default="if-failed", max_length=20)
    override_maintenance: bool = False
    phases: str | None = Field(default=None, min_length=1, max_length=100)
    success_threshold: int | None = Field(default=None, ge=0, le=100)
    error_threshold: int | None = Field(default=None, ge=0, le=100)


@router.post("/application-deployments", status_code=201, dependencies=[allow("deployment.create")])
def deploy_application(body: AppDeploymentBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        deployment_id = create_app_from_request(
            session,
            ctx.site_code,
            body.app_id,
            body.collection,
            purpose=body.purpose,
            available=body.available,
            deadline=body.deadline,
            expires=body.expires,
            rerun=body.rerun,
            override_maintenance=body.override_maintenance,
            phases=body.phases,
            success_threshold=body.success_threshold,
            error_threshold=body.error_threshold,
        )
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit=0)
