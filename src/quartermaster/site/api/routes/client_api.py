"""The client API (the management point), `/api/client/v1`: see docs/protocol.md."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from quartermaster.core.canonical import canonical_json
from quartermaster.core.client_protocol import CLIENT_API
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.site.api.client_fast_path import (
    Authenticate,
    FastRoute,
    add_routes,
    with_poll_hint,
)
from quartermaster.site.api.schemas.client_api import (
    InventoryAnswer,
    PeerAnswer,
    PeerReport,
    RegisterBody,
    Registered,
    Rekeyed,
    StatusBody,
)
from quartermaster.site.content import manifests
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments import policy
from quartermaster.site.deployments.status_ingest import MISMATCH, ingest
from quartermaster.site.distribution import peers
from quartermaster.site.distribution.locations import content_locations
from quartermaster.site.identity import audit
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.models import Client, utcnow
from quartermaster.site.targeting import client_access, clients, membership, registration
from quartermaster.site.web.access import (
    CheckedRoute,
    Ctx,
    allow,
    require,
)
from quartermaster.site.web.errors import (
    parse_body,
)


class ClientRoute(CheckedRoute):
    """Asks a client flagged by `qm client notify` to poll again within NOTIFY_POLL_SECONDS."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            return with_poll_hint(request, await handler(request))

        return answer


router = APIRouter(prefix=CLIENT_API, route_class=ClientRoute)


def _client_id(action: str) -> Callable[..., str]:
    """The authenticated client's ID, once `action` is allowed for it (its approval state)."""
    requirement = require(action)

    # A default, not Annotated: a string annotation cannot name this closure variable.
    def client_id(principal: Principal = Depends(requirement)) -> str:  # noqa: B008
        return principal.name

    return client_id


InventoryClient = Annotated[str, Depends(_client_id("client_api.inventory"))]
PeerClient = Annotated[str, Depends(_client_id("client_api.peer"))]


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
async def register(body: RegisterBody, ctx: Ctx, request: Request) -> dict[str, Any]:
    """One transaction: the client, its 3001 message and its collections by rule (so its
    first policy poll already lists what they deploy). Open to anyone, so each address
    may register only so often (config.json: registrations_per_minute)."""
    ctx.registrations.spend(request.client.host if request.client else "")
    return await run_in_threadpool(registration.register, ctx, body.model_dump())


@router.post("/inventory", response_model=InventoryAnswer)
def inventory(body: RegisterBody, client_id: InventoryClient, ctx: Ctx) -> dict[str, bool]:
    """The client's facts now (as at registration); its rule memberships follow them."""
    with ctx.db.session() as session:
        client = clients.get_client(session, client_id)
        changed = membership.report_inventory(session, client, body.model_dump())
    return {"membership_changed": changed}


@router.post("/peer", response_model=PeerAnswer)
def peer_report(
    body: PeerReport, client_id: PeerClient, ctx: Ctx, request: Request
) -> dict[str, Any]:
    """A peer's port, power and network facts and holdings; the answer says whether it serves
    and for which boundary (site/distribution/peers.py). The address is the one the request
    came from, never one the client claims."""
    address = request.client.host if request.client else ""
    with ctx.db.session() as session:
        return peers.report(session, client_id, address, body.model_dump())


# The routes of every poll and wave: one table (site/api/client_fast_path.py) from which both
# ClientFastPath and the FastAPI routes are built. Each answer authenticates with the
# `authenticate` its row hands it, inside its own transaction, on a worker thread.


async def policy_answer(
    request: Request, ctx: SiteContext, _: str, authenticate: Authenticate
) -> Response:
    wanted = request.headers.get("if-none-match")
    return await run_in_threadpool(_policy, ctx, authenticate, wanted)


def _policy(ctx: SiteContext, authenticate: Authenticate, wanted: str | None) -> Response:
    now = utcnow()
    with ctx.db.session() as session:
        call = authenticate(session, policy_request=now)
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


async def manifest_answer(
    request: Request, ctx: SiteContext, package_hash: str, authenticate: Authenticate
) -> Response:
    return await run_in_threadpool(_manifest, ctx, authenticate, package_hash)


def _manifest(ctx: SiteContext, authenticate: Authenticate, package_hash: str) -> Response:
    with ctx.db.session() as session:
        call = authenticate(session)
        body = manifests.manifest_bytes(session, _hash(package_hash), call.serial, ctx.db.url)
    return Response(body, media_type="application/json")


async def locations_answer(
    request: Request, ctx: SiteContext, package_hash: str, authenticate: Authenticate
) -> Response:
    return await run_in_threadpool(_locations, ctx, request, authenticate, package_hash)


def _locations(
    ctx: SiteContext, request: Request, authenticate: Authenticate, package_hash: str
) -> Response:
    with ctx.db.session() as session:
        call = authenticate(session)
        address = request.client.host if request.client else ""
        ips = [address] if address else []
        ips += [ip for ip in call.ip_addresses if isinstance(ip, str)]
        found = content_locations(session, _hash(package_hash), ips)
        answer = peers.locate(
            session, ctx.key.envelope, call.client_id, package_hash, address, found
        )
    return _json({"package_hash": package_hash, **answer})


async def status_answer(
    request: Request, ctx: SiteContext, _: str, authenticate: Authenticate
) -> Response:
    raw = await request.body()
    address = request.client.host if request.client else ""
    result, mismatch = await run_in_threadpool(_status, ctx, authenticate, raw, address)
    ctx.metrics.ingested(result["accepted"], result["duplicates"])
    if mismatch:  # a reported mismatch (10075) asks the embedded DP to revalidate
        ctx.distribution_changed()
    return JSONResponse(result)


def _status(
    ctx: SiteContext, authenticate: Authenticate, raw: bytes, address: str
) -> tuple[dict[str, int], bool]:
    with ctx.db.session() as session:
        call = authenticate(session)
        body = parse_body(StatusBody, raw)  # after authentication, as for other routes
        result = ingest(session, call.client_id, body.messages, address)
    return result, any(m.get("message_id") == MISMATCH for m in body.messages)


CLIENT_TABLE = (
    FastRoute("get_policy", "GET", "policy", "client_api.policy", policy_answer),
    FastRoute(
        "get_manifest",
        "GET",
        "manifests",
        "client_api.content",
        manifest_answer,
        takes_hash=True,
    ),
    FastRoute(
        "locations", "GET", "locations", "client_api.content", locations_answer, takes_hash=True
    ),
    FastRoute("post_status", "POST", "status", "client_api.status", status_answer, body=StatusBody),
)
add_routes(router, CLIENT_TABLE)


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
