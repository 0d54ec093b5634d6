"""Status messages, under `/api/v1/status-messages`: the filtered, paged view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from quartermaster.site.api.schemas.common import MAX_INT, ObjectId, aware
from quartermaster.site.api.schemas.status import MessageList
from quartermaster.site.lookups import client_filter
from quartermaster.site.status.messages import query_messages
from quartermaster.site.web.access import AuditedRoute, Ctx, allow

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/status-messages", response_model=MessageList, dependencies=[allow("status.read")])
def status_messages(
    ctx: Ctx,
    deployment: Annotated[ObjectId | None, Query(max_length=20)] = None,
    client: str | None = Query(None, max_length=255, description="client ID or host name"),
    package: Annotated[ObjectId | None, Query(max_length=20)] = None,
    message_id: int | None = Query(None, ge=0, le=MAX_INT),
    severity: str | None = Query(None, max_length=20),
    dp: str | None = Query(None, max_length=100),
    component: str | None = Query(None, max_length=50),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=0, le=MAX_INT),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {
            "messages": query_messages(
                session,
                deployment_id=deployment,
                client_id=client_filter(session, client),
                package_id=package,
                message_id=message_id,
                severity=severity,
                dp_name=dp,
                component=component,
                since=aware(since, "since"),
                until=aware(until, "until"),
                limit=limit,
                before_id=before_id,
            )
        }
