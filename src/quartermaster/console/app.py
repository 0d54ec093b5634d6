"""The console as one router under /console, built for one site context."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from quartermaster.console.pages import (
    applications,
    auth,
    clients,
    collections,
    deployments,
    dps,
    jobs,
    overview,
    packages,
    related,
    status,
)
from quartermaster.console.web import STATIC, PublicRoute
from quartermaster.site.context import SiteContext

FAVICON = STATIC / "favicon.svg"


def favicon() -> Response:
    """Browsers ask every site for /favicon.ico; the console's mark answers (an SVG, which
    browsers take whatever the name), so their requests are no 404s in the access log."""
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


def create_console(ctx: SiteContext) -> APIRouter:
    """The web console's routes; `qm site serve` adds them to the site's API app."""
    router = APIRouter(include_in_schema=False)  # each page module is under /console
    for pages in (auth, overview, packages, dps, collections, deployments, status, clients):
        router.include_router(pages.router)
    for pages in (applications, jobs, related):  # reached from the overview and other pages
        router.include_router(pages.router)
    router.add_api_route("/favicon.ico", favicon, methods=["GET"], route_class_override=PublicRoute)
    return router
