"""The overview: the site at a glance, the way an administrator starts the day."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Response

from quartermaster.console.charts import Part
from quartermaster.console.web import get_ctx, page_router, render, signed_in
from quartermaster.site.deployments import reports
from quartermaster.site.distribution import points
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.status.messages import query_messages

router = page_router()

DP_STATES = (
    ("installed", "Installed"),
    ("distributing", "Distributing"),
    ("pending", "Pending"),
    ("failed", "Failed"),
    ("validation_failed", "Validation failed"),
)


@router.get("/")
def overview(request: Request, principal: Annotated[Principal, signed_in("site.read")]) -> Response:
    ctx = get_ctx(request)
    with ctx.db.session() as session:
        counts = reports.site_counts(session)
        dps = points.list_dps(session)
        progress = reports.distribution_progress(session)
        history = reports.outcome_history(session)
        errors = query_messages(session, severity="error", limit=8)
    health = [(dp, *reports.dp_health(dp)) for dp in dps]
    healthy = sum(1 for _dp, level, _why in health if level == "ok")
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
        dp_healthy=healthy,
        health=health,
        bars=bars,
        history=history,
        errors=errors,
    )
