"""Release approvals, under `/api/v1/approvals`, and the statements approvers sign.

Nothing here decides what runs: an approval is stored only if an approver key of the
site's root signed it, and clients check every one themselves (client/approval_check.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from quartermaster.core.errors import NotFound
from quartermaster.core.trust_roles import ANY_COLLECTION
from quartermaster.site.api.schemas.approvals import ApprovalBody
from quartermaster.site.api.schemas.common import MAX_INT
from quartermaster.site.deployments import approvals
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.web.access import AuditedRoute, Ctx, allow, require

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


def _scope(collection: list[str], any_collection: bool) -> list[str]:
    return [ANY_COLLECTION] if any_collection else collection


@router.get(
    "/packages/{package_id}/versions/{source_version}/approval-statement",
    dependencies=[allow("package.read")],
)
def package_statement(
    package_id: str,
    source_version: int,
    ctx: Ctx,
    collection: list[str] = Query(default=[], max_length=100),  # noqa: B008
    any_collection: bool = False,
    program: list[str] = Query(default=[], max_length=100),  # noqa: B008
) -> dict[str, Any]:
    if not 1 <= source_version <= MAX_INT:
        raise NotFound(f"package {package_id} has no version {source_version}")
    return approvals.package_statement(
        ctx, package_id, source_version, _scope(collection, any_collection), program
    )


@router.get("/applications/{app_id}/approval-statement", dependencies=[allow("application.read")])
def application_statement(
    app_id: str,
    ctx: Ctx,
    revision: int | None = Query(default=None, ge=1, le=MAX_INT),
    collection: list[str] = Query(default=[], max_length=100),  # noqa: B008
    any_collection: bool = False,
) -> dict[str, Any]:
    return approvals.application_statement(
        ctx, app_id, revision, _scope(collection, any_collection)
    )


@router.post("/approvals", status_code=201)
def post_approval(
    body: ApprovalBody,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require("release.approve"))],
) -> dict[str, Any]:
    return approvals.record_approval(ctx, body.statement, body.keyid, body.sig, principal.actor)


@router.get("/approvals/pending", dependencies=[allow("package.read")])
def pending(ctx: Ctx) -> dict[str, Any]:
    """Current package versions short of approvals (the console's list)."""
    return approvals.pending_releases(ctx)
