"""The FastAPI application of the site's control plane."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster import __version__
from quartermaster.core.errors import QMError
from quartermaster.site.api import (
    access_routes,
    account_routes,
    admin_routes,
    application_routes,
    client_routes,
    dp_routes,
)
from quartermaster.site.api.body_limit import BodyLimit
from quartermaster.site.api.common import (
    allow,
    http_error_handler,
    internal_handler,
    qm_error_handler,
    validation_handler,
)
from quartermaster.site.api.input_errors import invalid_data_handler
from quartermaster.site.api.openapi import use_error_shape
from quartermaster.site.context import SiteContext


def create_app(ctx: SiteContext) -> FastAPI:
    app = FastAPI(
        title="Quartermaster site",
        version=__version__,
        description="Admin, client (management point) and distribution point APIs.",
    )
    app.state.ctx = ctx
    app.add_middleware(client_routes.ClientFastPath)  # polls and waves (inside BodyLimit)
    app.add_middleware(BodyLimit)  # 413 before a route reads an oversized body
    use_error_shape(app)  # the OpenAPI document shows the one error shape
    app.add_exception_handler(QMError, qm_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DataError, invalid_data_handler)  # NUL, out-of-range numbers
    app.add_exception_handler(OverflowError, invalid_data_handler)
    app.add_exception_handler(Exception, internal_handler)
    app.include_router(client_routes.router)  # first: routes are matched in order, and a
    app.include_router(admin_routes.router)  # fleet's polls are most of the requests
    app.include_router(application_routes.router)
    app.include_router(dp_routes.router)
    app.include_router(account_routes.router)
    app.include_router(access_routes.router)

    @app.get("/healthz", include_in_schema=False, dependencies=[allow("site.health")])
    def health() -> dict[str, str]:
        return {"status": "ok", "site_code": ctx.site_code}

    return app
