"""The FastAPI application of the site's control plane."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster import __version__
from quartermaster.core.errors import QMError
from quartermaster.site.api.body_limit import BodyLimit
from quartermaster.site.api.client_fast_path import ClientFastPath
from quartermaster.site.api.openapi import use_error_shape
from quartermaster.site.api.request_log import RequestLog
from quartermaster.site.api.routes import ROUTERS, client_api
from quartermaster.site.context import SiteContext
from quartermaster.site.web.access import allow
from quartermaster.site.web.errors import (
    http_error_handler,
    internal_handler,
    invalid_data_handler,
    qm_error_handler,
    validation_handler,
)


def create_app(ctx: SiteContext) -> FastAPI:
    app = FastAPI(
        title="Quartermaster site",
        version=__version__,
        description="Admin, client (management point) and distribution point APIs.",
    )
    app.state.ctx = ctx
    # polls and waves, from the one call table (inside BodyLimit)
    app.add_middleware(ClientFastPath, table=client_api.CLIENT_TABLE)
    app.add_middleware(BodyLimit)  # 413 before a route reads an oversized body
    # outermost: request ID, access log and request metrics (site/api/request_log.py)
    app.add_middleware(RequestLog, observers=[ctx.metrics.observe])
    use_error_shape(app)  # the OpenAPI document shows the one error shape
    app.add_exception_handler(QMError, qm_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DataError, invalid_data_handler)  # NUL, out-of-range numbers
    app.add_exception_handler(OverflowError, invalid_data_handler)
    app.add_exception_handler(Exception, internal_handler)
    for router in ROUTERS:  # in order: routes are matched in order
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False, dependencies=[allow("site.health")])
    def health() -> dict[str, str]:
        return {"status": "ok", "site_code": ctx.site_code}

    return app
