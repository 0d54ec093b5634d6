"""What every console page shares: the route class, sign-in and CSRF checks, rendering.

A console route is an admin API route with another way in: `signed_in(action)` is the API's
own `require(action)` given the session cookie instead of a bearer token, and `ConsoleRoute`
is the API's `AuditedRoute`, so a console action is authorized by `authorize()` and
written to the audit log exactly as the REST route that does the same. What differs is only
the answer: HTML pages and redirects instead of JSON.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster import __version__
from quartermaster.console import charts, formatting, sessions
from quartermaster.core.errors import Forbidden, InvalidInput, QMError
from quartermaster.site.context import SiteContext
from quartermaster.site.identity.authorization import Principal, is_allowed
from quartermaster.site.web.access import SAFE_METHODS, AuditedRoute, require

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
PAGE_SIZE = 50
ModelT = TypeVar("ModelT", bound=BaseModel)

ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
ENV.filters.update(formatting.FILTERS)
ENV.globals.update(charts=charts, percent=formatting.percent, version=__version__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class CSRFRefused(Forbidden):
    code = "csrf"


# --------------------------------------------------------------------------- route classes


def _html_errors(
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def answer(request: Request) -> Response:
        try:
            response = await handler(request)
        except QMError as exc:
            response = error_response(request, exc.http_status, exc.message, exc.hint)
        except RequestValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                for e in exc.errors()
            )
            response = error_response(
                request,
                422,
                f"this request has a mistake: {problems}",
                "go back and correct the form",
            )
        except StarletteHTTPException as exc:
            response = error_response(request, exc.status_code, str(exc.detail), "")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return answer


class ConsoleRoute(AuditedRoute):
    """A page or action: declares its action, is audited like the API, answers in HTML."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _html_errors(super().get_route_handler())


class PublicRoute(APIRoute):
    """Sign-in, sign-out and static files: the only console routes without an action."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _html_errors(super().get_route_handler())


# --------------------------------------------------------------------------- dependencies


def signed_in(action: str) -> Any:
    """`Depends(...)` for a page or action: the REST API's `require(action)`, recognizing
    the caller by the console's session cookie."""
    return Depends(require(action, sessions.session_principal))


async def csrf_guard(request: Request) -> None:
    """Every POST carries the session's CSRF token (form field or X-CSRF-Token header)."""
    if request.method in SAFE_METHODS:
        return
    await request.body()  # kept on the request, so the audit row can show the form
    form = await request.form()
    token = str(form.get("csrf_token") or request.headers.get("x-csrf-token", ""))
    if not sessions.csrf_valid(get_ctx(request), sessions.current(request), token):
        raise CSRFRefused(
            "this form is out of date or did not come from the console",
            "reload the page and submit the form again",
        )


async def form_data(request: Request) -> FormData:
    return await request.form()


def get_ctx(request: Request) -> SiteContext:
    ctx: SiteContext = request.app.state.ctx
    return ctx


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value.strip() if isinstance(value, str) else default


def fields(form: FormData, name: str) -> list[str]:
    return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]


# --------------------------------------------------------------------------- answers


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    section: str = "",
    status: int = 200,
    session: sessions.ConsoleSession | None = None,
    **context: Any,
) -> HTMLResponse:
    ctx = get_ctx(request)
    session = session or sessions.current(request)
    flash = _read_flash(request)
    html = ENV.get_template(template).render(
        request=request,
        principal=principal,
        section=section,
        flash=flash,
        can=lambda action: principal is not None and is_allowed(principal, action),
        csrf=sessions.csrf_token(ctx, session) if session else "",
        site={"code": ctx.site_code, "name": ctx.config.name},
        query=lambda **changes: query_string(request, **changes),
        **context,
    )
    response = HTMLResponse(html, status)
    if flash:
        response.delete_cookie(sessions.FLASH_COOKIE, path=sessions.COOKIE_PATH)
    return response


def query_string(request: Request, **changes: Any) -> str:
    """This page's query with some parameters changed (None or "" removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def redirect(request: Request, url: str, message: str = "", kind: str = "ok") -> Response:
    """303 to `url` (after a form), carrying a one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        value = sessions.b64(json.dumps({"k": kind, "m": message[:500]}).encode())
        signed = f"{value}.{sessions.flash_signature(request, value)}"
        response.set_cookie(
            sessions.FLASH_COOKIE,
            signed,
            max_age=60,
            path=sessions.COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(sessions.FLASH_COOKIE, "")
    value, _, signature = raw.partition(".")
    if not value:
        return None
    expected = sessions.flash_signature(request, value)
    if not expected or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(sessions.unb64(value))
        return {"kind": str(data["k"]), "message": str(data["m"])}
    except (ValueError, KeyError, TypeError):
        return None


def back(request: Request, default: str = "/console/") -> str:
    """Where a form came from (its Referer, when it is a console page of this site)."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/console"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return default


def safe_next(target: str | None) -> str:
    """Only a console path may be a place to go after sign-in (no open redirect)."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console/"


# The console page that shows what a `qm` command named in an error's hint lists or changes.
CLI_PAGES = {
    "package": ("Packages", "/console/packages"),
    "program": ("Packages", "/console/packages"),
    "collection": ("Collections", "/console/collections"),
    "deploy": ("Deployments", "/console/deployments"),
    "dp": ("Distribution points", "/console/dps"),
    "client": ("Clients", "/console/clients"),
    "status": ("Status messages", "/console/status"),
}
_CLI_COMMAND = re.compile(r"`qm ([a-z-]+)[^`]*`")


def console_hint(hint: str) -> tuple[str, list[tuple[str, str]]]:
    """An error's hint as the console says it: a hint that sends the reader to a `qm`
    command with a console page becomes links to that page (the text is dropped)."""
    pages = list(dict.fromkeys(CLI_PAGES[g] for g in _CLI_COMMAND.findall(hint) if g in CLI_PAGES))
    return ("", pages) if pages else (hint, [])


def error_response(request: Request, status: int, message: str, hint: str) -> Response:
    if status == 401:
        target = "/console/sign-in?" + urlencode({"next": request.url.path})
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    hint, pages = console_hint(hint)
    if request.method not in SAFE_METHODS and status not in (403, 413, 429):
        if pages:
            hint = "see " + " and ".join(name for name, _ in pages)
        text = f"{message} — {hint}" if hint else message
        return redirect(request, back(request), text, "error")
    principal = getattr(request.state, "principal", None)
    return render(
        request,
        "error.html",
        principal,
        status=status,
        code=status,
        message=message,
        hint=hint,
        pages=pages,
    )


class Pager:
    """Offset pages of PAGE_SIZE rows; the page asks for one row more to know if there is a
    next page, so no list needs a COUNT over 100,000 rows."""

    def __init__(
        self, offset: int, rows: list[Any], limit: int = PAGE_SIZE, total: int | None = None
    ) -> None:
        self.offset, self.limit, self.total = offset, limit, total
        self.has_next = len(rows) > limit
        self.rows = rows[:limit]

    @property
    def first(self) -> int:
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.limit, 0) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.has_next else None


def body(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """A form read into the REST API's own request model, so both faces accept exactly the
    same input; a mistake becomes the same kind of error (422) with what to fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'form'}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        raise InvalidInput(
            f"the form has a mistake: {problems}", "correct the field named and submit again"
        ) from None


def page_router() -> APIRouter:
    """The router of one section: under /console, CSRF-checked, audited, in HTML."""
    return APIRouter(
        prefix="/console", route_class=ConsoleRoute, dependencies=[Depends(csrf_guard)]
    )
