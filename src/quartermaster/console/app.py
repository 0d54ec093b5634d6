"""The console as one router under /console, built for one site context."""

from __future__ import annotations

from fastapi import APIRouter

from quartermaster.console.pages import (
    auth,
    clients,
    collections,
    deployments,
    dps,
    overview,
    packages,
    status,
)
from quartermaster.site.context import SiteContext


def create_console(ctx: SiteContext) -> APIRouter:
    """The web console's routes; `qm site serve` adds them to the site's API app."""
    router = APIRouter(include_in_schema=False)  # each page module is under /console
    for pages in (auth, overview, packages, dps, collections, deployments, status, clients):
        router.include_router(pages.router)
    return router
