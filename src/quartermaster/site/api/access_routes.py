"""The administrator's levers on client and DP credentials, under `/api/v1`:
approve, block and re-key clients; retire and re-enroll distribution points."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from quartermaster.core.errors import InvalidInput
from quartermaster.site.api.common import AuditedRoute, Ctx, allow
from quartermaster.site.distribution import points
from quartermaster.site.identity.authorization import APPROVED, BLOCKED
from quartermaster.site.targeting import client_access, membership
from quartermaster.site.targeting.clients import client_summary

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)

ClientIdPath = Annotated[str, Path(min_length=1, max_length=64)]
DPNamePath = Annotated[str, Path(min_length=1, max_length=100)]


class NotifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50_000
    )
    collection: str | None = Field(default=None, min_length=1, max_length=200)


@router.post("/clients/notify", dependencies=[allow("client.notify")])
def notify_clients(body: NotifyBody, ctx: Ctx) -> dict[str, int]:
    """Ask clients to poll for policy at their next contact (client_access.py, notification)."""
    if not body.client_ids and body.collection is None:
        raise InvalidInput("name the clients to notify", "give client_ids, a collection, or both")
    with ctx.db.session() as session:
        return {"notified": client_access.request_poll(session, body.client_ids, body.collection)}


@router.post("/clients/{client_id}/approve", dependencies=[allow("client.approve")])
def approve_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """Approve a pending client, or unblock a blocked one; it joins its collections now."""
    with ctx.db.session() as session:
        client = client_access.set_approval(session, client_id, APPROVED)
        membership.client_changed(session, client.client_id)
        return client_summary(client)


@router.post("/clients/{client_id}/block", dependencies=[allow("client.block")])
def block_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """Block a client; it leaves every collection now (only approved clients are members)."""
    with ctx.db.session() as session:
        client = client_access.set_approval(session, client_id, BLOCKED)
        membership.client_changed(session, client.client_id)
        return client_summary(client)


@router.post("/clients/{client_id}/rekey", dependencies=[allow("client.rekey")])
def rekey_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """From now on the client's secret only buys a new one (docs/protocol.md, rekey)."""
    with ctx.db.session() as session:
        return client_summary(client_access.require_rekey(session, client_id))


@router.post("/dps/{name}/retire", dependencies=[allow("dp.retire")])
def retire_dp(name: DPNamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        dp = points.retire_dp(session, name)
        answer = {"name": dp.name, "state": dp.state}
    ctx.distribution_changed()
    return answer


@router.post("/dps/{name}/reenroll", dependencies=[allow("dp.reenroll")])
def reenroll_dp(name: DPNamePath, ctx: Ctx) -> dict[str, Any]:
    """A new one-time enrollment token; the DP's current credential stops working now."""
    with ctx.db.session() as session:
        token = points.reenroll_dp(session, name)
    return {"name": name, "enrollment_token": token}
