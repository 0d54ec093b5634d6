"""The client API (the management point), `/api/client/v1`: see docs/protocol.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.site import clients, distribution, policy
from quartermaster.site.api.common import Ctx, bearer
from quartermaster.site.models import Client, utcnow
from quartermaster.site.status_ingest import MAX_BATCH, ingest

router = APIRouter(prefix="/api/client/v1")


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(default="", max_length=50)
    os_version: str = Field(default="", max_length=100)
    architecture: str = Field(default="", max_length=50)
    ip_addresses: list[str] = Field(default_factory=list, max_length=64)
    agent_version: str = Field(default="", max_length=50)
    properties: dict[str, Any] = Field(default_factory=dict, max_length=200)


def client_id_of(request: Request, ctx: Ctx) -> str:
    with ctx.db.session() as session:
        return clients.authenticate(session, bearer(request)).client_id


ClientId = Annotated[str, Depends(client_id_of)]


def _hash(value: str) -> str:
    if not is_sha256_hex(value):
        raise InvalidInput(f"{value!r} is not a package hash", "use the 64 hex digits from policy")
    return value


@router.post("/register", status_code=201)
def register(body: RegisterBody, ctx: Ctx) -> dict[str, Any]:
    return clients.register(ctx, body.model_dump())


@router.get("/policy")
def get_policy(request: Request, client_id: ClientId, ctx: Ctx) -> Response:
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
def get_manifest(package_hash: str, _: ClientId, ctx: Ctx) -> Response:
    with ctx.db.session() as session:
        return _json(distribution.manifest_envelope(session, _hash(package_hash)))


@router.get("/locations/{package_hash}")
def locations(package_hash: str, request: Request, client_id: ClientId, ctx: Ctx) -> dict[str, Any]:
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
def post_status(body: StatusBody, client_id: ClientId, ctx: Ctx) -> dict[str, int]:
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        result = ingest(session, client, body.messages)
    ctx.distribution_changed()  # a reported mismatch asks the embedded DP to revalidate
    return result
