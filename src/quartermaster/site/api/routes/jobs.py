"""`/api/v1/jobs`: background jobs (site/jobs/) and their progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from quartermaster.site.api.schemas.common import MAX_INT
from quartermaster.site.jobs import records
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/jobs", dependencies=[allow("job.read")])
def list_jobs(
    ctx: Ctx,
    state: str | None = Query(None, pattern="^(queued|running|succeeded|failed)$"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    """Newest first."""
    with ctx.db.session() as session:
        return {"jobs": records.list_jobs(session, state, limit, offset)}


@router.get("/jobs/{job_id}", dependencies=[allow("job.read")])
def show_job(job_id: Annotated[int, Path(ge=1, le=MAX_INT)], ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return records.job_dict(records.get_job(session, job_id))


def accepted(response: Response, job: dict[str, Any]) -> dict[str, Any]:
    """For a route that starts a job: 202 (set in its decorator) and where to follow it."""
    response.headers["Location"] = f"/api/v1/jobs/{job['job_id']}"
    return job


def caller(request: Request) -> str:
    """Who started a job (the account's name)."""
    return str(getattr(getattr(request.state, "principal", None), "name", ""))
