"""The audit log, under `/api/v1/audit` (docs/security.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from quartermaster.site.api.schemas.audit import AuditLog
from quartermaster.site.api.schemas.common import aware
from quartermaster.site.identity import audit
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/audit", response_model=AuditLog, dependencies=[allow("audit.read")])
def audit_log(
    ctx: Ctx,
    account: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=50),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=2**31 - 1),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {
            "entries": audit.query(
                session,
                account=account,
                action=action,
                since=aware(since, "since"),
                until=aware(until, "until"),
                limit=limit,
                before_id=before_id,
            )
        }
