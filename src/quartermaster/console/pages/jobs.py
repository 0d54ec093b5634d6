"""Running work: background jobs (snapshots, distributions, validations) queued or running,
with their progress in files and bytes, refreshed while any is running."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from quartermaster.console.web import get_ctx, page_router, render, signed_in
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.jobs.records import list_jobs, running_jobs

router = page_router()
#: Finished jobs shown under the running ones.
RECENT = 20


@router.get("/jobs")
def job_list(
    request: Request,
    principal: Annotated[Principal, signed_in("job.read")],
    part: str = Query("", pattern="^(running)?$"),
) -> Response:
    with get_ctx(request).db.session() as session:
        running = running_jobs(session)
        recent = [] if part else list_jobs(session, limit=RECENT + len(running))
    recent = [j for j in recent if j["state"] not in ("queued", "running")][:RECENT]
    return render(
        request,
        "_jobs_running.html" if part else "jobs.html",
        principal,
        section="jobs",
        running=running,
        recent=recent,
    )
