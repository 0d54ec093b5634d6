"""Signing in and out, and the console's static files: the routes anyone may reach."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.datastructures import FormData

from quartermaster.console import sessions
from quartermaster.console.web import (
    STATIC,
    PublicRoute,
    csrf_guard,
    field,
    form_data,
    get_ctx,
    render,
    safe_next,
)
from quartermaster.core.errors import NotFound, Unauthorized
from quartermaster.site.identity import accounts, audit
from quartermaster.site.identity.authorization import Credential, Principal

router = APIRouter(prefix="/console", route_class=PublicRoute)
STATIC_FILES = {p.name for p in STATIC.iterdir() if p.is_file()}


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = Query("/console/", max_length=500)) -> Response:
    """The form; it starts an anonymous session so that the form has a CSRF token too."""
    session = sessions.current(request)
    fresh = session is None
    if session is None:
        session = sessions.ConsoleSession.anonymous()
    response = render(
        request, "sign_in.html", None, session=session, next=safe_next(next), error="", username=""
    )
    if fresh:
        sessions.set_cookie(request, response, session)
    return response


@router.post("/sign-in", dependencies=[Depends(csrf_guard)])
def sign_in(request: Request, form: Annotated[FormData, Depends(form_data)]) -> Response:
    ctx = get_ctx(request)
    name, password = field(form, "username"), str(form.get("password") or "")
    address = request.client.host if request.client else ""
    target = safe_next(field(form, "next"))
    sessions.THROTTLE.check(ctx, name, address)
    try:
        with ctx.db.session() as db:
            account = accounts.authenticate_password(db, name, password)
            principal = accounts.principal_for(account)
            account_id = account.id
            audit.record(db, principal, "console.sign_in", "", audit.OK, address)
    except Unauthorized as exc:
        sessions.THROTTLE.failed(ctx, name, address)
        return render(
            request, "sign_in.html", None, next=target, error=exc.message, username=name, status=401
        )
    sessions.THROTTLE.succeeded(ctx, name, address)
    signed = sessions.start(ctx, account_id)
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookie(request, response, signed)
    return response


@router.post("/sign-out", dependencies=[Depends(csrf_guard)])
def sign_out(request: Request) -> Response:
    ctx = get_ctx(request)
    try:
        principal: Principal | None = sessions.session_principal(request, ctx, Credential.ACCOUNT)
    except Unauthorized:
        principal = None
    session = sessions.current(request)
    if session is not None:
        sessions.end(ctx, session)
    if principal is not None:
        with ctx.db.session() as db:
            audit.record(
                db,
                principal,
                "console.sign_out",
                "",
                audit.OK,
                request.client.host if request.client else "",
            )
    response = RedirectResponse("/console/sign-in", status_code=303)
    sessions.clear_cookie(request, response)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    """Only the files shipped in console/static, never a path outside it."""
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name!r}", "")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(
        STATIC / name, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"}
    )
