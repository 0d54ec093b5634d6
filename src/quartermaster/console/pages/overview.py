"""The overview: the site at a glance, the way an administrator starts the day, and what
needs attention (warnings as well as errors: a paused rollout is a warning)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Response

from quartermaster.console.charts import Part
from quartermaster.console.web import get_ctx, page_router, render, signed_in
from quartermaster.site.deployments import reports
from quartermaster.site.distribution import points
from quartermaster.site.distribution.health import all_dp_health
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.jobs.records import running_jobs
from quartermaster.site.lookups import hostnames
from quartermaster.site.status.messages import query_messages

router = page_router()

DP_STATES = (
    ("installed", "Installed"),
    ("distributing", "Distributing"),
    ("pending", "Pending"),
    ("failed", "Failed"),
    ("validation_failed", "Validation failed"),
)
NOW_STATES = (
    ("in_progress", "In progress"),
    ("unknown", "Unknown"),
    ("requirements_not_met", "Requirements not met"),
    ("failed", "Failed"),
    ("succeeded", "Succeeded"),
)


@router.get("/")
def overview(request: Request, principal: Annotated[Principal, signed_in("site.read")]) -> Response:
    ctx = get_ctx(request)
    with ctx.db.session() as session:
        counts = reports.site_counts(session)
        dps = points.list_dps(session)
        health = all_dp_health(session, dps)
        progress = reports.distribution_progress(session)
        history = reports.outcome_history(session)
        errors = query_messages(session, severity="error", limit=8)
        stopped = reports.threshold_paused(session)
        failing = reports.repeated_failures(session)
        now = reports.state_totals(session)
        jobs = running_jobs(session)
        names = hostnames(session, [m["client_id"] for m in errors])
    sick = [
        (dp, health[dp["name"]]) for dp in dps if health[dp["name"]].level in ("error", "warning")
    ]
    bars = [
        {
            "dp": row["dp"],
            "total": sum(row["states"].values()),
            "parts": [Part(key, text, row["states"].get(key, 0)) for key, text in DP_STATES],
        }
        for row in progress
    ]
    return render(
        request,
        "overview.html",
        principal,
        section="overview",
        counts=counts,
        dp_total=len(dps),
        dp_healthy=sum(1 for h in health.values() if h.level == "ok"),
        bars=bars,
        history=history,
        errors=errors,
        names=names,
        stopped=stopped,
        sick=sick,
        failing=failing,
        now_parts=[Part(key, text, now.get(key, 0)) for key, text in NOW_STATES],
        jobs=jobs,
    )
