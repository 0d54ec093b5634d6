"""The distribution point API, `/api/dp/v1`: see docs/protocol.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.site import distribution
from quartermaster.site.api.common import Ctx, bearer

router = APIRouter(prefix="/api/dp/v1")


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enrollment_token: str = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=2000)


def dp_id_of(request: Request, ctx: Ctx) -> int:
    with ctx.db.session() as session:
        return distribution.authenticate_dp(session, bearer(request)).id


DPId = Annotated[int, Depends(dp_id_of)]


@router.post("/enroll")
def enroll(body: EnrollBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp, credential = distribution.enroll(session, body.enrollment_token, body.url)
        name = dp.name
    return {"dp": name, "credential": credential, "site_code": ctx.site_code,
            "signing_keys": [k.to_dict() for k in ctx.trusted_keys()]}


@router.get("/assignments")
def assignments(dp_id: DPId, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = session.get(distribution.DistributionPoint, dp_id)
        assert dp is not None
        return distribution.assignments(ctx, session, dp)


@router.get("/manifests/{package_hash}")
def manifest(package_hash: str, _: DPId, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return distribution.manifest_envelope(session, package_hash)


class ContentReport(BaseModel):
    package_hash: str = Field(min_length=64, max_length=64)
    state: str = Field(pattern="^(distributing|installed|failed)$")
    bytes_done: int = Field(default=0, ge=0)
    bytes_total: int = Field(default=0, ge=0)
    bytes_transferred: int = Field(default=0, ge=0)
    reason: str = Field(default="", max_length=2000)
    validated: bool = False
    bad_blobs: int = Field(default=0, ge=0)


class ReportBody(BaseModel):
    free_bytes: int | None = Field(default=None, ge=0)
    used_bytes: int | None = Field(default=None, ge=0)
    contents: list[ContentReport] = Field(default_factory=list, max_length=10000)


@router.post("/report")
def report(body: ReportBody, dp_id: DPId, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = session.get(distribution.DistributionPoint, dp_id)
        assert dp is not None
        distribution.record_report(session, dp, body.model_dump())
    return {"ok": True}
