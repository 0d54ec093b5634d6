"""What every route shares: the site context, authentication and the one error shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster.core.errors import QMError, Unauthorized
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import token_hash
from quartermaster.site.models import ApiToken, utcnow


def get_ctx(request: Request) -> SiteContext:
    ctx: SiteContext = request.app.state.ctx
    return ctx


Ctx = Annotated[SiteContext, Depends(get_ctx)]


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("this request needs a token",
                           "pass --token (or set QM_TOKEN) with the site's admin.token")
    return token.strip()


def require_admin(request: Request, ctx: Ctx) -> ApiToken:
    token = bearer(request)
    with ctx.db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        if row is None or row.revoked or (row.expires is not None and row.expires < utcnow()):
            raise Unauthorized("the token is not valid",
                               "use the token in SITE_HOME/admin.token (--token @FILE reads a file)")
        return row


Admin = Annotated[ApiToken, Depends(require_admin)]


def error_response(status: int, code: str, message: str, hint: str = "") -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": hint}}, status_code=status)


async def qm_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QMError)
    return error_response(exc.http_status, exc.code, exc.message, exc.hint)


async def validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
    return error_response(422, "invalid_input", f"invalid request: {problems}",
                          "see docs/protocol.md for the request shape")


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def internal_handler(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, "internal", "the site server failed to handle this request",
                          "see the site server's log; the request changed nothing")
