"""What operators' tools read: `/readyz` (may this process take traffic?) and `/metrics`
(Prometheus). `/healthz` (is it alive?) is in app.py.

Who may read `/metrics`: a process on the site's own host that connects to it directly
(loopback, with no `Forwarded`/`X-Forwarded-For` header: a reverse proxy on the same host
adds one, so a stranger behind it is not "local"), or anyone with an account token, any
role (docs/operations.md, "Metrics"). Everyone else gets 401.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quartermaster.site.context import SiteContext
from quartermaster.site.db import MIGRATIONS
from quartermaster.site.identity.authorization import NOBODY, Principal
from quartermaster.site.web.access import CheckedRoute, Ctx, Requirement, allow

router = APIRouter(route_class=CheckedRoute)
log = logging.getLogger("quartermaster.site.readiness")
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def direct_local_peer(request: Request) -> bool:
    """True for a connection from this host that no proxy relayed."""
    if request.client is None or any(h in request.headers for h in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


class MetricsReader(Requirement):
    """`site.metrics`: loopback without a credential, or any account token."""

    def __call__(self, request: Request, ctx: Ctx) -> Principal:
        if direct_local_peer(request) and "authorization" not in request.headers:
            request.state.principal = NOBODY
            return NOBODY
        return super().__call__(request, ctx)


@router.get(
    "/metrics", include_in_schema=False, dependencies=[Depends(MetricsReader("site.metrics"))]
)
def metrics(ctx: Ctx) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", include_in_schema=False, dependencies=[allow("site.health")])
def ready(ctx: Ctx) -> JSONResponse:
    """200 when this process can do its work; 503 with every reason it cannot."""
    problems = readiness_problems(ctx)
    body: dict[str, Any] = {
        "status": "ready" if not problems else "not_ready",
        "site_code": ctx.site_code,
        "embedded_dp": ctx.embedded_dp_state,
        "problems": problems,
    }
    return JSONResponse(body, status_code=503 if problems else 200)


def readiness_problems(ctx: SiteContext) -> list[str]:
    """Terse reasons anyone may read (no paths, no error texts: those go to the log)."""
    from alembic.runtime.migration import MigrationContext  # only when asked (see db.py)

    problems: list[str] = []
    try:
        with ctx.db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except Exception:
        log.warning("readiness: the database is not reachable", exc_info=True)
        return ["database unreachable"]
    wanted = code_heads()
    if set(current) != wanted:
        problems.append(
            f"database schema at {', '.join(sorted(current)) or 'nothing'}, this release needs "
            f"{', '.join(sorted(wanted))}: run `qm site upgrade`"
        )
    if ctx.embedded_dp_state == "failed":
        problems.append("embedded DP failed (see `qm site status` and the site's log)")
    elif ctx.embedded_dp_state == "starting":
        problems.append("embedded DP starting")
    return problems


@functools.cache
def code_heads() -> frozenset[str]:
    """The newest migration(s) this release knows."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())
