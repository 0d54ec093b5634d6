"""The client API (the management point), `/api/client/v1`: see docs/protocol.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import update
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from quartermaster.core.canonical import canonical_json
from quartermaster.core.client_protocol import CLIENT_API, POLL_AFTER_HEADER
from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.site.api.openapi import request_body_schema
from quartermaster.site.api.schemas.client_api import (
    InventoryAnswer,
    RegisterBody,
    Registered,
    Rekeyed,
    StatusBody,
)
from quartermaster.site.content import manifests
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments import policy
from quartermaster.site.deployments.status_ingest import MISMATCH, ingest
from quartermaster.site.distribution.locations import content_locations
from quartermaster.site.identity import audit
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.models import Client, utcnow
from quartermaster.site.targeting import client_access, membership, registration
from quartermaster.site.web.access import (
    CheckedRoute,
    Ctx,
    allow,
    client_action,
    client_secret,
    require,
)
from quartermaster.site.web.errors import (
    invalid_data_handler,
    parse_body,
    qm_error_handler,
    validation_handler,
)


class ClientRoute(CheckedRoute):
    """Asks a client flagged by `qm client notify` to poll again within NOTIFY_POLL_SECONDS."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            return with_poll_hint(request, await handler(request))

        return answer


def with_poll_hint(request: Request, response: Response) -> Response:
    """The `QM-Poll-After` header for a client flagged by `qm client notify`."""
    if getattr(getattr(request.state, "principal", None), "poll_requested", False):
        response.headers[POLL_AFTER_HEADER] = str(client_access.NOTIFY_POLL_SECONDS)
    return response


router = APIRouter(prefix=CLIENT_API, route_class=ClientRoute)


def _client_id(action: str) -> Callable[..., str]:
    """The authenticated client's ID, once `action` is allowed for it (its approval state)."""
    requirement = require(action)

    # A default, not Annotated: a string annotation cannot name this closure variable.
    def client_id(principal: Principal = Depends(requirement)) -> str:  # noqa: B008
        return principal.name

    return client_id


InventoryClient = Annotated[str, Depends(_client_id("client_api.inventory"))]


RekeyCaller = Annotated[Principal, Depends(require("client_api.rekey"))]


def _hash(value: str) -> str:
    if not is_sha256_hex(value):
        raise InvalidInput(f"{value!r} is not a package hash", "use the 64 hex digits from policy")
    return value


@router.post(
    "/register",
    response_model=Registered,
    status_code=201,
    dependencies=[allow("client_api.register")],
)
async def register(body: RegisterBody, ctx: Ctx) -> dict[str, Any]:
    """One transaction: the client, its 3001 message and its collections by rule (so its
    first policy poll already lists what they deploy)."""
    return await run_in_threadpool(registration.register, ctx, body.model_dump())


@router.post("/inventory", response_model=InventoryAnswer)
def inventory(body: RegisterBody, client_id: InventoryClient, ctx: Ctx) -> dict[str, bool]:
    """The client's facts now (as at registration); its rule memberships follow them."""
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        changed = membership.report_inventory(session, client, body.model_dump())
    return {"membership_changed": changed}


async def policy_answer(request: Request, ctx: SiteContext, _: str = "") -> Response:
    secret, wanted = client_secret(request), request.headers.get("if-none-match")
    return await run_in_threadpool(_policy, ctx, request, secret, wanted)


@router.get("/policy", dependencies=[client_action("client_api.policy")])
async def get_policy(request: Request, ctx: Ctx) -> Response:
    return await policy_answer(request, ctx)


def _authenticate(
    session: Session,
    request: Request,
    secret: str,
    action: str,
    policy_request: datetime | None = None,
) -> client_access.ClientCall:
    """`client_access.authenticate`, keeping the principal for the poll hint and errors."""
    call = client_access.authenticate(session, secret, action, policy_request=policy_request)
    request.state.principal = call.principal
    return call


def _policy(ctx: SiteContext, request: Request, secret: str, wanted: str | None) -> Response:
    now = utcnow()
    with ctx.db.session() as session:
        call = _authenticate(session, request, secret, "client_api.policy", now)
        if call.principal.poll_requested:  # asked to poll now: it did
            session.execute(
                update(Client)
                .where(Client.client_id == call.client_id)
                .values(poll_requested=False)
            )
        etag = policy.etag_of(call.serial, now)
        if wanted == etag:
            return Response(status_code=304, headers={"ETag": etag})
        envelope = policy.build_policy(ctx, session, call.client_id, now, serial=call.serial)
    return _json(envelope, {"ETag": etag})


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(canonical_json(body), media_type="application/json", headers=headers)


async def manifest_answer(request: Request, ctx: SiteContext, package_hash: str) -> Response:
    return await run_in_threadpool(_manifest, ctx, request, client_secret(request), package_hash)


@router.get("/manifests/{package_hash}", dependencies=[client_action("client_api.content")])
async def get_manifest(package_hash: str, request: Request, ctx: Ctx) -> Response:
    return await manifest_answer(request, ctx, package_hash)


def _manifest(ctx: SiteContext, request: Request, secret: str, package_hash: str) -> Response:
    with ctx.db.session() as session:
        call = _authenticate(session, request, secret, "client_api.content")
        body = manifests.manifest_bytes(session, _hash(package_hash), call.serial)
    return Response(body, media_type="application/json")


async def locations_answer(request: Request, ctx: SiteContext, package_hash: str) -> Response:
    return await run_in_threadpool(_locations, ctx, request, client_secret(request), package_hash)


@router.get("/locations/{package_hash}", dependencies=[client_action("client_api.content")])
async def locations(package_hash: str, request: Request, ctx: Ctx) -> Response:
    return await locations_answer(request, ctx, package_hash)


def _locations(ctx: SiteContext, request: Request, secret: str, package_hash: str) -> Response:
    with ctx.db.session() as session:
        call = _authenticate(session, request, secret, "client_api.content")
        ips = [request.client.host] if request.client else []
        ips += [ip for ip in call.ip_addresses if isinstance(ip, str)]
        found = content_locations(session, _hash(package_hash), ips)
    return _json({"package_hash": package_hash, "locations": found})


async def status_answer(request: Request, ctx: SiteContext, _: str = "") -> Response:
    secret = client_secret(request)
    raw = await request.body()
    result, mismatch = await run_in_threadpool(_status, ctx, request, secret, raw)
    if mismatch:  # a reported mismatch (10075) asks the embedded DP to revalidate
        ctx.distribution_changed()
    return JSONResponse(result)


@router.post(
    "/status",
    dependencies=[client_action("client_api.status")],
    openapi_extra=request_body_schema(StatusBody),
)
async def post_status(request: Request, ctx: Ctx) -> Response:
    return await status_answer(request, ctx)


def _status(
    ctx: SiteContext, request: Request, secret: str, raw: bytes
) -> tuple[dict[str, int], bool]:
    with ctx.db.session() as session:
        call = _authenticate(session, request, secret, "client_api.status")
        body = parse_body(StatusBody, raw)  # after authentication, as for other routes
        result = ingest(session, call.client_id, body.messages)
    return result, any(m.get("message_id") == MISMATCH for m in body.messages)


Answer = Callable[[Request, SiteContext, str], Coroutine[Any, Any, Response]]


PREFIX = CLIENT_API + "/"


_FAST: dict[tuple[str, str], Answer] = {
    ("GET", "policy"): policy_answer,
    ("GET", "manifests"): manifest_answer,
    ("GET", "locations"): locations_answer,
    ("POST", "status"): status_answer,
}


_WITH_ARGUMENT = frozenset({"manifests", "locations"})


class ClientFastPath:
    """ASGI middleware for the four requests of every poll and wave (policy, manifests,
    locations, status): routing and dependency solving cost as much CPU as their database
    work. Inside BodyLimit; same functions, checks, errors and poll hint as the routes."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            name, slash, argument = scope["path"][len(PREFIX) :].partition("/")
            answer = _FAST.get((scope["method"], name))
            exact = bool(argument) and "/" not in argument if name in _WITH_ARGUMENT else not slash
            if answer is not None and exact:
                await _fast(answer, argument, scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _fast(
    answer: Answer, argument: str, scope: dict[str, Any], receive: Any, send: Any
) -> None:
    request = Request(scope, receive)
    try:
        response = with_poll_hint(request, await answer(request, scope["app"].state.ctx, argument))
    except QMError as exc:
        response = await qm_error_handler(request, exc)
    except RequestValidationError as exc:
        response = await validation_handler(request, exc)
    except (DataError, OverflowError) as exc:
        response = await invalid_data_handler(request, exc)
    await response(scope, receive, send)


@router.post("/rekey", response_model=Rekeyed)
def rekey(caller: RekeyCaller, request: Request, ctx: Ctx) -> dict[str, str]:
    """A new secret; it replaces the current one the first time the client uses it."""
    with ctx.db.session() as session:
        secret = client_access.rekey(session, caller.name)
        audit.record(
            session,
            caller,
            "client_api.rekey",
            caller.name,
            audit.OK,
            request.client.host if request.client else "",
        )
    return {"client_id": caller.name, "client_secret": secret}
