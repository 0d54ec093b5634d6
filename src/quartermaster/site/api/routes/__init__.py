"""The site's routes, one module per resource. `ROUTERS` is the order the application
includes them in: the client API first (a fleet's polls are most of the requests, and routes
are matched in order), then the admin API, then the DP API."""

from __future__ import annotations

from fastapi import APIRouter

from quartermaster.site.api.routes import (
    accounts,
    applications,
    approvals,
    audit,
    client_api,
    clients,
    collections,
    deployments,
    dp_api,
    dps,
    jobs,
    operations,
    packages,
    programs,
    site,
    status,
    tokens,
    trust,
)

ROUTERS: list[APIRouter] = [
    client_api.router,
    trust.client_router,
    site.router,
    packages.router,
    programs.router,
    collections.router,
    deployments.router,
    status.router,
    clients.router,
    dps.router,
    applications.router,
    dp_api.router,
    accounts.router,
    tokens.router,
    audit.router,
    jobs.router,
    operations.router,  # /readyz, /metrics
    approvals.router,
    trust.router,
]
