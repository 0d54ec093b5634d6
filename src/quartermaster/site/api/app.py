"""The FastAPI application of the site's control plane."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster import __version__
from quartermaster.core.errors import QMError
from quartermaster.site.api import admin_routes, client_routes, dp_routes
from quartermaster.site.api.common import (
    http_error_handler,
    internal_handler,
    qm_error_handler,
    validation_handler,
)
from quartermaster.site.context import SiteContext


def create_app(ctx: SiteContext) -> FastAPI:
    app = FastAPI(title="Quartermaster site", version=__version__,
                  description="Admin, client (management point) and distribution point APIs.")
    app.state.ctx = ctx
    app.add_exception_handler(QMError, qm_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, internal_handler)
    app.include_router(admin_routes.router)
    app.include_router(client_routes.router)
    app.include_router(dp_routes.router)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "site_code": ctx.site_code}

    return app
