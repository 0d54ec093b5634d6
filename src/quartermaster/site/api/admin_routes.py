"""The admin REST API, `/api/v1`: what `qm` and the console call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.core.errors import InvalidInput
from quartermaster.core.program import ProgramSpec
from quartermaster.site import distribution, packages
from quartermaster.site.api.common import Admin, Ctx
from quartermaster.site.clients import list_clients
from quartermaster.site.deployments import (
    create_deployment,
    deployment_status,
    list_deployments,
)
from quartermaster.site.membership import add_member, create_collection, list_collections, show_collection
from quartermaster.site.status_ingest import query_messages

router = APIRouter(prefix="/api/v1")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgramBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    command: str = Field(min_length=1, max_length=8000)
    working_dir: str = Field(default="", max_length=1000)
    run_context: str = "system"
    max_runtime: int = 3600
    success_codes: list[int] = Field(default_factory=lambda: [0], max_length=100)
    reboot_codes: list[int] = Field(default_factory=lambda: [3010, 1641], max_length=100)
    retry_codes: list[int] = Field(default_factory=list, max_length=100)
    retry_count: int = 3
    retry_delay: int = 60
    requirements: dict[str, Any] = Field(default_factory=dict)

    def spec(self) -> ProgramSpec:
        return ProgramSpec.from_dict(self.model_dump())


class PackageBody(Strict):
    name: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=4096)
    manufacturer: str = Field(default="", max_length=200)
    version_label: str = Field(default="", max_length=100)
    programs: list[ProgramBody] = Field(default_factory=list, max_length=100)


@router.get("/site")
def site_info(ctx: Ctx, _: Admin) -> dict[str, Any]:
    return {"site_code": ctx.site_code, "name": ctx.config.name, "content_url": ctx.content_url,
            "signing_keys": [k.to_dict() for k in ctx.trusted_keys()]}


@router.post("/packages", status_code=201)
def create_package(body: PackageBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return packages.create_package(ctx, body.name, body.source, [p.spec() for p in body.programs],
                                   body.manufacturer, body.version_label)


@router.get("/packages")
def list_packages(ctx: Ctx, _: Admin, search: str = Query("", max_length=200),
                  limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    return {"packages": packages.list_packages(ctx, search, limit, offset)}


@router.get("/packages/{package_id}")
def show_package(package_id: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return packages.show_package(ctx, package_id)


@router.post("/packages/{package_id}/update")
def update_package(package_id: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return packages.update_package(ctx, package_id)


@router.post("/packages/{package_id}/programs", status_code=201)
def add_program(package_id: str, body: ProgramBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return packages.add_program(ctx, package_id, body.spec())


class DPNames(Strict):
    dps: list[str] = Field(min_length=1, max_length=1000)


@router.post("/packages/{package_id}/distribute")
def distribute(package_id: str, body: DPNames, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        packages.get_package(session, package_id)
        distribution.distribute(session, package_id, body.dps)
    return packages.show_package(ctx, package_id)


@router.post("/packages/{package_id}/remove-dp")
def remove_dp(package_id: str, body: DPNames, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        packages.get_package(session, package_id)
        for name in body.dps:
            distribution.remove_from_dp(session, package_id, name)
    return packages.show_package(ctx, package_id)


class CollectionBody(Strict):
    name: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)


class MemberBody(Strict):
    client_id: str = Field(min_length=1, max_length=64)


@router.post("/collections", status_code=201)
def new_collection(body: CollectionBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        create_collection(session, body.name, body.comment)
        return show_collection(session, body.name)


@router.get("/collections")
def collections(ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"collections": list_collections(session)}


@router.get("/collections/{name}")
def collection(name: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        return show_collection(session, name)


@router.post("/collections/{name}/members")
def collection_member(name: str, body: MemberBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        add_member(session, name, body.client_id)
        return show_collection(session, name)


class DeploymentBody(Strict):
    package_id: str = Field(min_length=1, max_length=20)
    program: str = Field(min_length=1, max_length=100)
    collection: str = Field(min_length=1, max_length=200)
    available: datetime | None = None
    deadline: datetime | None = None
    expires: datetime | None = None
    rerun: str = "if-failed"


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{what} has no time zone", "give times with a zone, e.g. 2026-12-01T22:00Z")
    return value


@router.post("/deployments", status_code=201)
def new_deployment(body: DeploymentBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        deployment_id = create_deployment(
            session, ctx.site_code, body.package_id, body.program, body.collection,
            _aware(body.available, "available"), _aware(body.deadline, "deadline"),
            _aware(body.expires, "expires"), body.rerun)
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit=0)


@router.get("/deployments")
def deployments(ctx: Ctx, _: Admin, limit: int = Query(100, ge=1, le=1000),
                offset: int = Query(0, ge=0)) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"deployments": list_deployments(session, limit, offset)}


@router.get("/deployments/{deployment_id}/status")
def deployment(deployment_id: str, ctx: Ctx, _: Admin, limit: int = Query(1000, ge=0, le=10000),
               offset: int = Query(0, ge=0), state: str | None = Query(None, max_length=30)) -> dict[str, Any]:
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit, offset, state)


@router.get("/status-messages")
def status_messages(ctx: Ctx, _: Admin, deployment: str | None = Query(None, max_length=20),
                    client: str | None = Query(None, max_length=64),
                    package: str | None = Query(None, max_length=20),
                    message_id: int | None = None, severity: str | None = Query(None, max_length=20),
                    dp: str | None = Query(None, max_length=100),
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int = Query(100, ge=1, le=1000), before_id: int | None = None) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"messages": query_messages(
            session, deployment_id=deployment, client_id=client, package_id=package,
            message_id=message_id, severity=severity, dp_name=dp,
            since=_aware(since, "since"), until=_aware(until, "until"),
            limit=limit, before_id=before_id)}


@router.get("/clients")
def clients(ctx: Ctx, _: Admin, search: str = Query("", max_length=200),
            limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"clients": list_clients(session, search, limit, offset)}


class DPBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    boundaries: list[str] = Field(default_factory=list, max_length=1000)
    fallback: bool = False


@router.post("/dps", status_code=201)
def add_dp(body: DPBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        token = distribution.add_dp(session, body.name, body.url, body.boundaries, body.fallback)
    return {"name": body.name, "enrollment_token": token}


@router.get("/dps")
def dps(ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"dps": distribution.list_dps(session)}


@router.get("/dps/{name}/content")
def dp_content(name: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = distribution.get_dp(session, name)
        return {"dp": name, "content": distribution.dp_content(session, dp)}


class ValidateBody(Strict):
    package_id: str | None = Field(default=None, max_length=20)


@router.post("/dps/{name}/validate")
def validate_dp(name: str, body: ValidateBody, ctx: Ctx, _: Admin) -> dict[str, Any]:
    with ctx.db.session() as session:
        count = distribution.request_validation(session, name, body.package_id)
    return {"dp": name, "versions_to_validate": count}
