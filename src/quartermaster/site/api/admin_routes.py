"""The admin REST API, `/api/v1`: what `qm` and the console call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput
from quartermaster.core.program import ProgramSpec, check_run_as
from quartermaster.site.api.common import AuditedRoute, Ctx, allow
from quartermaster.site.content import packages
from quartermaster.site.deployments.deployments import (
    cancel_deployment,
    create_from_request,
    deployment_status,
    list_deployments,
    pause_deployment,
    reschedule_deployment,
    resume_deployment,
)
from quartermaster.site.distribution import points, validation
from quartermaster.site.status.messages import query_messages
from quartermaster.site.targeting.clients import list_clients
from quartermaster.site.targeting.collection_rules import MAX_RULE_LENGTH
from quartermaster.site.targeting.membership import (
    MAX_BULK_MEMBERS,
    MAX_LINKS,
    MAX_RULES,
    MAX_WINDOWS,
    add_member,
    add_members,
    add_rule,
    add_window,
    create_collection,
    link,
    list_collections,
    remove_member,
    remove_rule,
    remove_window,
    show_collection,
    unlink,
)

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)
MAX_INT = 2**31 - 1  # query numbers beyond this cannot name a row (and overflow SQL)


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
        check_run_as(self.run_context)  # a bare "user" (no account) is refused
        return ProgramSpec.from_dict(self.model_dump())


class PackageBody(Strict):
    name: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=4096)
    manufacturer: str = Field(default="", max_length=200)
    version_label: str = Field(default="", max_length=100)
    programs: list[ProgramBody] = Field(default_factory=list, max_length=100)


@router.get("/site", dependencies=[allow("site.read")])
def site_info(ctx: Ctx) -> dict[str, Any]:
    return {
        "site_code": ctx.site_code,
        "name": ctx.config.name,
        "content_url": ctx.content_url,
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
    }


@router.post("/packages", status_code=201, dependencies=[allow("package.create")])
def create_package(body: PackageBody, ctx: Ctx) -> dict[str, Any]:
    return packages.create_package(
        ctx,
        body.name,
        body.source,
        [p.spec() for p in body.programs],
        body.manufacturer,
        body.version_label,
    )


@router.get("/packages", dependencies=[allow("package.read")])
def list_packages(
    ctx: Ctx,
    search: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    return {"packages": packages.list_packages(ctx, search, limit, offset)}


@router.get("/packages/{package_id}", dependencies=[allow("package.read")])
def show_package(package_id: str, ctx: Ctx) -> dict[str, Any]:
    return packages.show_package(ctx, package_id)


@router.post("/packages/{package_id}/update", dependencies=[allow("package.update")])
def update_package(package_id: str, ctx: Ctx) -> dict[str, Any]:
    return packages.update_package(ctx, package_id)


@router.post(
    "/packages/{package_id}/programs", status_code=201, dependencies=[allow("program.create")]
)
def add_program(package_id: str, body: ProgramBody, ctx: Ctx) -> dict[str, Any]:
    return packages.add_program(ctx, package_id, body.spec())


class DPNames(Strict):
    dps: list[str] = Field(min_length=1, max_length=1000)


@router.post("/packages/{package_id}/distribute", dependencies=[allow("package.distribute")])
def distribute(package_id: str, body: DPNames, ctx: Ctx) -> dict[str, Any]:
    return packages.distribute_package(ctx, package_id, body.dps)


@router.post("/packages/{package_id}/remove-dp", dependencies=[allow("package.remove_dp")])
def remove_dp(package_id: str, body: DPNames, ctx: Ctx) -> dict[str, Any]:
    return packages.remove_package_from_dps(ctx, package_id, body.dps)


class OneDP(Strict):
    dp: str = Field(min_length=1, max_length=100)


@router.post("/packages/{package_id}/redistribute", dependencies=[allow("package.distribute")])
def redistribute(package_id: str, body: OneDP, ctx: Ctx) -> dict[str, Any]:
    """The DP re-hashes its copy and fetches again whatever is missing or damaged."""
    return packages.redistribute(ctx, package_id, body.dp)


RuleText = Annotated[str, Field(min_length=1, max_length=2 * MAX_RULE_LENGTH)]
WindowText = Annotated[str, Field(min_length=1, max_length=200)]
CollectionName = Annotated[str, Field(min_length=1, max_length=200)]


class CollectionBody(Strict):
    name: CollectionName
    comment: str = Field(default="", max_length=2000)
    rules: list[RuleText] = Field(default_factory=list, max_length=MAX_RULES)
    include: list[CollectionName] = Field(default_factory=list, max_length=MAX_LINKS)
    exclude: list[CollectionName] = Field(default_factory=list, max_length=MAX_LINKS)
    windows: list[WindowText] = Field(default_factory=list, max_length=MAX_WINDOWS)


class MemberBody(Strict):
    """One client (`client_id`) or many at once (`client_ids`, one re-evaluation)."""

    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    client_ids: list[str] | None = Field(default=None, max_length=MAX_BULK_MEMBERS)


class OneMemberBody(Strict):
    client_id: str = Field(min_length=1, max_length=64)


class RuleBody(Strict):
    rule: RuleText


class OtherCollectionBody(Strict):
    collection: CollectionName


class WindowBody(Strict):
    window: WindowText


@router.post("/collections", status_code=201, dependencies=[allow("collection.create")])
def new_collection(body: CollectionBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        create_collection(
            session,
            body.name,
            body.comment,
            rules=body.rules,
            include=body.include,
            exclude=body.exclude,
            windows=body.windows,
        )
        return show_collection(session, body.name)


@router.get("/collections", dependencies=[allow("collection.read")])
def collections(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"collections": list_collections(session)}


@router.get("/collections/{name}", dependencies=[allow("collection.read")])
def collection(
    name: str,
    ctx: Ctx,
    limit: int = Query(1000, ge=0, le=100_000),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return show_collection(session, name, limit, offset)


@router.post("/collections/{name}/members", dependencies=[allow("collection.update")])
def collection_member(name: str, body: MemberBody, ctx: Ctx) -> dict[str, Any]:
    if (body.client_id is None) == (body.client_ids is None):
        raise InvalidInput("give either client_id or client_ids")
    with ctx.db.session() as session:
        if body.client_ids is not None:
            added = add_members(session, name, body.client_ids)
            total = show_collection(session, name, limit=0)["member_count"]
            return {"name": name, "added": added, "member_count": total}
        add_member(session, name, body.client_id or "")
        return show_collection(session, name)


@router.post("/collections/{name}/members/remove", dependencies=[allow("collection.update")])
def collection_member_remove(name: str, body: OneMemberBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_member(session, name, body.client_id)
        return show_collection(session, name)


@router.post("/collections/{name}/rules", dependencies=[allow("collection.update")])
def collection_rule_add(name: str, body: RuleBody, ctx: Ctx) -> dict[str, Any]:
    """Add a query rule; a rule with a mistake is a 422 naming its line and column."""
    with ctx.db.session() as session:
        add_rule(session, name, body.rule)
        return show_collection(session, name)


@router.post("/collections/{name}/rules/remove", dependencies=[allow("collection.update")])
def collection_rule_remove(name: str, body: RuleBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_rule(session, name, body.rule)
        return show_collection(session, name)


def _change_link(ctx: Ctx, name: str, other: str, kind: str, remove: bool) -> dict[str, Any]:
    with ctx.db.session() as session:
        if remove:
            unlink(session, name, other, kind)
        else:
            link(session, name, other, kind)
        return show_collection(session, name)


@router.post("/collections/{name}/includes", dependencies=[allow("collection.update")])
def collection_include(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "include", remove=False)


@router.post("/collections/{name}/includes/remove", dependencies=[allow("collection.update")])
def collection_include_remove(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "include", remove=True)


@router.post("/collections/{name}/excludes", dependencies=[allow("collection.update")])
def collection_exclude(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "exclude", remove=False)


@router.post("/collections/{name}/excludes/remove", dependencies=[allow("collection.update")])
def collection_exclude_remove(name: str, body: OtherCollectionBody, ctx: Ctx) -> dict[str, Any]:
    return _change_link(ctx, name, body.collection, "exclude", remove=True)


@router.post("/collections/{name}/windows", dependencies=[allow("collection.update")])
def collection_window_add(name: str, body: WindowBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        add_window(session, name, body.window)
        return show_collection(session, name)


@router.post("/collections/{name}/windows/remove", dependencies=[allow("collection.update")])
def collection_window_remove(name: str, body: WindowBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        remove_window(session, name, body.window)
        return show_collection(session, name)


TimeText = Annotated[str, Field(min_length=1, max_length=100)]


class DeploymentBody(Strict):
    """Times are what an administrator types (``now``, ``+2h``, ISO 8601 with a zone)."""

    package_id: str = Field(min_length=1, max_length=20)
    program: str = Field(min_length=1, max_length=100)
    collection: CollectionName
    available: TimeText | None = None
    deadline: TimeText | None = None
    expires: TimeText | None = None
    rerun: str = Field(default="if-failed", max_length=20)
    override_maintenance: bool = False
    phases: str | None = Field(default=None, min_length=1, max_length=100)
    success_threshold: int | None = Field(default=None, ge=0, le=100)
    error_threshold: int | None = Field(default=None, ge=0, le=100)


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            f"{what} has no time zone", "give times with a zone, e.g. 2026-12-01T22:00Z"
        )
    return value


@router.post("/deployments", status_code=201, dependencies=[allow("deployment.create")])
def new_deployment(body: DeploymentBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        deployment_id = create_from_request(
            session,
            ctx.site_code,
            body.package_id,
            body.program,
            body.collection,
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


@router.get("/deployments", dependencies=[allow("deployment.read")])
def deployments(
    ctx: Ctx, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_INT)
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"deployments": list_deployments(session, limit, offset)}


@router.get("/deployments/{deployment_id}/status", dependencies=[allow("deployment.read")])
def deployment(
    deployment_id: str,
    ctx: Ctx,
    limit: int = Query(1000, ge=0, le=10000),
    offset: int = Query(0, ge=0, le=MAX_INT),
    state: str | None = Query(None, max_length=30),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit, offset, state)


def _control(
    ctx: Ctx, deployment_id: str, action: Callable[[Session, str], None]
) -> dict[str, Any]:
    with ctx.db.session() as session:
        action(session, deployment_id)
    with ctx.db.session() as session:
        return deployment_status(session, deployment_id, limit=0)


class ScheduleBody(Strict):
    """New times (``now``, ``+2h``, ISO 8601 with a zone); ``none`` clears deadline/expiry."""

    available: TimeText | None = None
    deadline: TimeText | None = None
    expires: TimeText | None = None


@router.post("/deployments/{deployment_id}/schedule", dependencies=[allow("deployment.update")])
def deployment_schedule(deployment_id: str, body: ScheduleBody, ctx: Ctx) -> dict[str, Any]:
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


@router.post("/deployments/{deployment_id}/pause", dependencies=[allow("deployment.update")])
def deployment_pause(deployment_id: str, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, pause_deployment)


@router.post("/deployments/{deployment_id}/resume", dependencies=[allow("deployment.update")])
def deployment_resume(deployment_id: str, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, resume_deployment)


@router.post("/deployments/{deployment_id}/cancel", dependencies=[allow("deployment.update")])
def deployment_cancel(deployment_id: str, ctx: Ctx) -> dict[str, Any]:
    return _control(ctx, deployment_id, cancel_deployment)


@router.get("/status-messages", dependencies=[allow("status.read")])
def status_messages(
    ctx: Ctx,
    deployment: str | None = Query(None, max_length=20),
    client: str | None = Query(None, max_length=64),
    package: str | None = Query(None, max_length=20),
    message_id: int | None = Query(None, ge=0, le=MAX_INT),
    severity: str | None = Query(None, max_length=20),
    dp: str | None = Query(None, max_length=100),
    component: str | None = Query(None, max_length=50),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {
            "messages": query_messages(
                session,
                deployment_id=deployment,
                client_id=client,
                package_id=package,
                message_id=message_id,
                severity=severity,
                dp_name=dp,
                component=component,
                since=_aware(since, "since"),
                until=_aware(until, "until"),
                limit=limit,
                before_id=before_id,
            )
        }


@router.get("/clients", dependencies=[allow("client.read")])
def clients(
    ctx: Ctx,
    search: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_INT),
    approval: str | None = Query(None, pattern="^(approved|pending|blocked)$"),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"clients": list_clients(session, search, limit, offset, approval)}


class DPBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    boundaries: list[str] = Field(default_factory=list, max_length=1000)
    fallback: bool = False


@router.post("/dps", status_code=201, dependencies=[allow("dp.create")])
def add_dp(body: DPBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        token = points.add_dp(session, body.name, body.url, body.boundaries, body.fallback)
    return {"name": body.name, "enrollment_token": token}


@router.get("/dps", dependencies=[allow("dp.read")])
def dps(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"dps": points.list_dps(session)}


@router.get("/dps/{name}/content", dependencies=[allow("dp.read")])
def dp_content(name: str, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.get_dp(session, name)
        return {"dp": name, "content": points.dp_content(session, dp)}


class ValidateBody(Strict):
    package_id: str | None = Field(default=None, max_length=20)


@router.post("/dps/{name}/validate", dependencies=[allow("dp.validate")])
def validate_dp(name: str, body: ValidateBody, ctx: Ctx) -> dict[str, Any]:
    count = validation.validate_dp(ctx, name, body.package_id)
    return {"dp": name, "versions_to_validate": count}
