"""Clients, under `/api/v1/clients`: the list, and the administrator's levers on a client's
credential (approve, block, re-key) and its polling (notify)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from quartermaster.core.errors import InvalidInput
from quartermaster.site.api.schemas.clients import ClientList, ClientSummary, Notified, NotifyBody
from quartermaster.site.api.schemas.common import MAX_INT
from quartermaster.site.identity.authorization import APPROVED, BLOCKED
from quartermaster.site.targeting import client_access, membership
from quartermaster.site.targeting.clients import client_summary, list_clients
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/clients", response_model=ClientList, dependencies=[allow("client.read")])
def clients(
    ctx: Ctx,
    search: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_INT),
    approval: str | None = Query(None, pattern="^(approved|pending|blocked)$"),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"clients": list_clients(session, search, limit, offset, approval)}


ClientIdPath = Annotated[str, Path(min_length=1, max_length=255)]  # GUID or host name


@router.post("/clients/notify", response_model=Notified, dependencies=[allow("client.notify")])
def notify_clients(body: NotifyBody, ctx: Ctx) -> dict[str, int]:
    """Ask clients to poll for policy at their next contact (client_access.py, notification)."""
    if not body.client_ids and body.collection is None:
        raise InvalidInput("name the clients to notify", "give client_ids, a collection, or both")
    with ctx.db.session() as session:
        return {"notified": client_access.request_poll(session, body.client_ids, body.collection)}


@router.post(
    "/clients/{client_id}/approve",
    response_model=ClientSummary,
    dependencies=[allow("client.approve")],
)
def approve_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """Approve a pending client, or unblock a blocked one; it joins its collections now."""
    with ctx.db.session() as session:
        client = client_access.set_approval(session, client_id, APPROVED)
        membership.client_changed(session, client.client_id)
        return client_summary(client)


@router.post(
    "/clients/{client_id}/block", response_model=ClientSummary, dependencies=[allow("client.block")]
)
def block_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """Block a client; it leaves every collection now (only approved clients are members)."""
    with ctx.db.session() as session:
        client = client_access.set_approval(session, client_id, BLOCKED)
        membership.client_changed(session, client.client_id)
        return client_summary(client)


@router.post(
    "/clients/{client_id}/rekey", response_model=ClientSummary, dependencies=[allow("client.rekey")]
)
def rekey_client(client_id: ClientIdPath, ctx: Ctx) -> dict[str, Any]:
    """From now on the client's secret only buys a new one (docs/protocol.md, rekey)."""
    with ctx.db.session() as session:
        return client_summary(client_access.require_rekey(session, client_id))
