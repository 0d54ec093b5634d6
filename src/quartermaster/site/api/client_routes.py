"""The client API (the management point), `/api/client/v1`: see docs/protocol.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.site import audit, client_access, clients, distribution, membership, policy
from quartermaster.site.api.common import CheckedRoute, Ctx, allow, require
from quartermaster.site.authorization import Principal
from quartermaster.site.models import Client, utcnow
from quartermaster.site.status_ingest import MAX_BATCH, ingest

router = APIRouter(prefix="/api/client/v1", route_class=CheckedRoute)


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(default="", max_length=50)
    os_version: str = Field(default="", max_length=100)
    architecture: str = Field(default="", max_length=50)
    ip_addresses: list[str] = Field(default_factory=list, max_length=64)
    agent_version: str = Field(default="", max_length=50)
    properties: dict[str, Any] = Field(default_factory=dict, max_length=200)


def _client_id(action: str) -> Callable[..., str]:
    """The authenticated client's ID, once `action` is allowed for it (its approval state)."""
    requirement = require(action)

    # A default, not Annotated: a string annotation cannot name this closure variable.
    def client_id(principal: Principal = Depends(requirement)) -> str:  # noqa: B008
        return principal.name

    return client_id


PolicyClient = Annotated[str, Depends(_client_id("client_api.policy"))]
ContentClient = Annotated[str, Depends(_client_id("client_api.content"))]
StatusClient = Annotated[str, Depends(_client_id("client_api.status"))]
InventoryClient = Annotated[str, Depends(_client_id("client_api.inventory"))]
RekeyCaller = Annotated[Principal, Depends(require("client_api.rekey"))]


def _hash(value: str) -> str:
    if not is_sha256_hex(value):
        raise InvalidInput(f"{value!r} is not a package hash", "use the 64 hex digits from policy")
    return value


@router.post("/register", status_code=201, dependencies=[allow("client_api.register")])
def register(body: RegisterBody, ctx: Ctx) -> dict[str, Any]:
    answer = clients.register(ctx, body.model_dump())
    with ctx.db.session() as session:  # collections by rule, before the first policy poll
        membership.client_changed(session, answer["client_id"])
    return answer


@router.post("/inventory")
def inventory(body: RegisterBody, client_id: InventoryClient, ctx: Ctx) -> dict[str, bool]:
    """The client's facts now (as at registration); its rule memberships follow them."""
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        changed = membership.report_inventory(session, client, body.model_dump())
    return {"membership_changed": changed}


@router.get("/policy")
def get_policy(request: Request, client_id: PolicyClient, ctx: Ctx) -> Response:
    now = utcnow()
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        client.last_policy_request = now
        etag = policy.policy_etag(session, now)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        envelope = policy.build_policy(ctx, session, client, now)
    return _json(envelope, {"ETag": etag})


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(canonical_json(body), media_type="application/json", headers=headers)


@router.get("/manifests/{package_hash}")
def get_manifest(package_hash: str, _: ContentClient, ctx: Ctx) -> Response:
    with ctx.db.session() as session:
        return _json(distribution.manifest_envelope(session, _hash(package_hash)))


@router.get("/locations/{package_hash}")
def locations(package_hash: str, request: Request, client_id: ContentClient,
              ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        ips = [request.client.host] if request.client else []
        ips += [ip for ip in client.ip_addresses if isinstance(ip, str)]
        return {"package_hash": package_hash,
                "locations": distribution.content_locations(session, _hash(package_hash), ips)}


class StatusBody(BaseModel):
    messages: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


@router.post("/status")
def post_status(body: StatusBody, client_id: StatusClient, ctx: Ctx) -> dict[str, int]:
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        result = ingest(session, client, body.messages)
    ctx.distribution_changed()  # a reported mismatch asks the embedded DP to revalidate
    return result


@router.post("/rekey")
def rekey(caller: RekeyCaller, request: Request, ctx: Ctx) -> dict[str, str]:
    """A new secret; it replaces the current one the first time the client uses it."""
    with ctx.db.session() as session:
        secret = client_access.rekey(session, caller.name)
        audit.record(session, caller, "client_api.rekey", caller.name, audit.OK,
                     request.client.host if request.client else "")
    return {"client_id": caller.name, "client_secret": secret}
