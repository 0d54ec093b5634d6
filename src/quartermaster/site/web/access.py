"""What every route of both web faces (the REST API and the console) shares: the site
context, authentication, authorization and the audit trail.

Every route declares the one action it performs, `require("package.create")` (or
`allow(...)` in its decorator); `site/identity/authorization.py` decides who may. A router
built with `CheckedRoute` refuses, at import, a route that declares no action, and
`AuditedRoute` (the admin API) writes an audit row around every change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster.core.errors import QMError, Unauthorized
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import enrollment
from quartermaster.site.identity import accounts, audit
from quartermaster.site.identity.authorization import (
    NOBODY,
    Credential,
    Principal,
    authorize,
    rule_for,
)
from quartermaster.site.targeting import client_access

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_ctx(request: Request) -> SiteContext:
    """Async, so that FastAPI calls it in the event loop (a sync one costs a thread hop)."""
    ctx: SiteContext = request.app.state.ctx
    return ctx


Ctx = Annotated[SiteContext, Depends(get_ctx)]

_MISSING_HINTS = {
    Credential.ACCOUNT: "pass --token (or set QM_TOKEN): SITE_HOME/admin.token or a token "
    "from `qm token create`",
    Credential.CLIENT: "send the client secret from registration as `Authorization: Bearer`",
    Credential.DP: "send the DP credential from enrollment as `Authorization: Bearer`",
}


def bearer(request: Request, hint: str = _MISSING_HINTS[Credential.ACCOUNT]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this request needs a credential", hint)
    return token.strip()


Identify = Callable[[Request, SiteContext, Credential], Principal]


def identify_bearer(request: Request, ctx: SiteContext, credential: Credential) -> Principal:
    """Who sent this request, from its `Authorization: Bearer` credential of the given kind."""
    if credential is Credential.NONE:
        return NOBODY
    secret = bearer(request, _MISSING_HINTS[credential])
    with ctx.db.session() as session:
        if credential is Credential.ACCOUNT:
            return accounts.authenticate_token(session, secret)
        if credential is Credential.CLIENT:
            return client_access.client_principal(session, secret)
        dp = enrollment.authenticate_dp(session, secret)
        return Principal(Credential.DP, dp.name, "dp", dp_id=dp.id)


class Requirement:
    """The dependency every route has: authenticate, authorize `action`, start the audit row.

    `identify` is how the caller is recognized; the web console passes its own (a session
    cookie) and gets the same authorization and audit as the REST API.
    """

    def __init__(self, action: str, identify: Identify = identify_bearer) -> None:
        self.action = action
        self.rule = rule_for(action)  # an unknown action fails at import, not at request
        self.identify = identify

    def __call__(self, request: Request, ctx: Ctx) -> Principal:
        principal = self.identify(request, ctx, self.rule.credential)
        request.state.principal = principal
        audited = principal.kind is Credential.ACCOUNT and request.method not in SAFE_METHODS
        try:
            authorize(principal, self.action)
        except QMError as exc:
            if audited:
                with ctx.db.session() as session:
                    audit.record(
                        session,
                        principal,
                        self.action,
                        _target(request),
                        audit.DENIED,
                        _source(request),
                        _route_details(request),
                        exc.http_status,
                    )
            raise
        if audited:
            with ctx.db.session() as session:
                request.state.audit_id = audit.begin(
                    session,
                    principal,
                    self.action,
                    _target(request),
                    _source(request),
                    _route_details(request),
                )
        return principal


class PublicRequirement(Requirement):
    """A public action (health, registration, enrollment): nothing to authenticate, so it
    runs in the event loop instead of a worker thread."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        request.state.principal = NOBODY
        return NOBODY


class ClientAction(Requirement):
    """The action of a client API route that the call table (site/api/client_fast_path.py)
    authenticates and authorizes inside the route's own transaction (one database
    transaction per request): a declaration read by `requirement_of`, never a dependency."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        if self.rule.credential is not Credential.CLIENT:
            raise ValueError(f"{action} is not a client action")


def require(action: str, identify: Identify = identify_bearer) -> Requirement:
    if identify is identify_bearer and rule_for(action).credential is Credential.NONE:
        return PublicRequirement(action, identify)
    return Requirement(action, identify)


def allow(action: str) -> Any:
    """For a route's decorator: `@router.get(path, dependencies=[allow("package.read")])`."""
    return Depends(require(action))


def client_secret(request: Request) -> str:
    """The client secret of a request (401 when it has none)."""
    return bearer(request, _MISSING_HINTS[Credential.CLIENT])


# Fail-closed default for a route that has not been given its own action yet: admins only.
# The security matrix test (tests/security) fails on every route that still uses it.
Admin = Annotated[Principal, Depends(require("legacy.admin_only"))]


DECLARED_REQUIREMENT = "declared_requirement"


def declare_requirement(endpoint: Callable[..., Any], requirement: Requirement) -> None:
    """Declare the action of an endpoint that checks it itself (the client call table)."""
    setattr(endpoint, DECLARED_REQUIREMENT, requirement)


def requirement_of(route: APIRoute) -> Requirement | None:
    """The action a route declares: on its endpoint, or among its nested dependencies."""
    declared = getattr(route.endpoint, DECLARED_REQUIREMENT, None)
    if isinstance(declared, Requirement):
        return declared
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop(0)
        if isinstance(dependant.call, Requirement):
            return dependant.call
        pending.extend(dependant.dependencies)
    return None


class CheckedRoute(APIRoute):
    """A route that cannot exist without declaring its action."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if requirement_of(self) is None:
            raise TypeError(
                f"route {sorted(self.methods or ())} {self.path} declares no action: "
                "add require(ACTION) or allow(ACTION) (site/identity/authorization.py)"
            )


class AuditedRoute(CheckedRoute):
    """An admin API route: a change it makes is completed in the audit log."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                await _finish(
                    request,
                    _failure_status(exc),
                    None,
                    {"error": getattr(exc, "code", type(exc).__name__)},
                )
                raise
            await _finish(request, response.status_code, response, {})
            return response

        return audited


async def _finish(
    request: Request, status: int, response: Response | None, details: dict[str, Any]
) -> None:
    entry_id = getattr(request.state, "audit_id", None)
    if entry_id is None:
        return
    try:
        body = await request.body()  # already read (and kept) by the route
        if body:
            details = {"request": _request_details(request, body), **details}
    except (RuntimeError, ValueError):
        details = {"request": "(not JSON)", **details}
    target = getattr(request.state, "created_object", "") or (
        _created_object(response) if response is not None else ""
    )
    outcome = audit.OK if status < 400 else audit.DENIED if status in (401, 403) else audit.FAILED
    ctx: SiteContext = request.app.state.ctx

    def write() -> None:
        with ctx.db.session() as session:
            audit.finish(session, entry_id, outcome, status, target, details)

    await run_in_threadpool(write)


def _request_details(request: Request, body: bytes) -> Any:
    """The request body for the audit row: JSON, or the fields of a console form."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return json.loads(body)


def _failure_status(exc: Exception) -> int:
    if isinstance(exc, QMError):
        return exc.http_status
    if isinstance(exc, RequestValidationError):
        return 422
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    return 500


_ID_KEYS = ("deployment_id", "app_id", "package_id", "client_id", "id", "name")


def _created_object(response: Response) -> str:
    """For a route that creates something, the new object's ID from its answer."""
    if response.status_code >= 400 or response.media_type != "application/json":
        return ""
    try:
        answer = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return ""
    if not isinstance(answer, dict):
        return ""
    return next((str(answer[k]) for k in _ID_KEYS if isinstance(answer.get(k), str | int)), "")


def _target(request: Request) -> str:
    return "/".join(str(v) for v in request.path_params.values())


def _source(request: Request) -> str:
    return request.client.host if request.client else ""


def _route_details(request: Request) -> dict[str, Any]:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return {"route": f"{request.method} {path}"}
