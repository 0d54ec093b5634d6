"""The site's root metadata and trust log: `/api/v1/trust/root`, `/api/v1/audit/trust-log`,
and the client's `/roots` and `/trust-log`, which let a client walk the root chain and check
that a policy's log head extends the one it saw. All read-only: a root is installed on the
site host with root keys (`qm keys root install`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from quartermaster.core.client_protocol import CLIENT_API
from quartermaster.core.errors import NotFound
from quartermaster.site.api.routes.client_api import ClientRoute
from quartermaster.site.api.schemas.common import MAX_INT
from quartermaster.site.identity import trust_log
from quartermaster.site.web.access import CheckedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=CheckedRoute)
client_router = APIRouter(prefix=CLIENT_API, route_class=ClientRoute)


@router.get("/trust/root", dependencies=[allow("site.read")])
def current_root(ctx: Ctx) -> dict[str, Any]:
    root = ctx.roots.current()
    if root is None:
        raise NotFound("this site has no root metadata", "see `qm keys root init`")
    return root.envelope


@router.get("/audit/trust-log", dependencies=[allow("trust_log.read")])
def read_log(ctx: Ctx, after: int = Query(default=0, ge=0, le=MAX_INT)) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"entries": trust_log.entries(session, after), "head": trust_log.head(session)}


@client_router.get("/roots", dependencies=[allow("client_api.policy")])
def client_roots(ctx: Ctx, after: int = Query(default=0, ge=0, le=MAX_INT)) -> dict[str, Any]:
    return {"roots": ctx.roots.after(after)}


@client_router.get("/trust-log", dependencies=[allow("client_api.policy")])
def client_log(
    ctx: Ctx,
    after: int = Query(default=0, ge=0, le=MAX_INT),
    upto: int = Query(default=MAX_INT, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"entries": trust_log.entries(session, after, upto)}
