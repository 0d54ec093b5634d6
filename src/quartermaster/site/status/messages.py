"""Reading status messages: the filtered, paged views the API and the console show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from quartermaster.site.models import (
    StatusMessageRow,
)
from quartermaster.site.status.program_output import output_fields, outputs_for


def query_messages(
    session: Session,
    *,
    deployment_id: str | None = None,
    client_id: str | None = None,
    package_id: str | None = None,
    message_id: int | None = None,
    severity: str | None = None,
    dp_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
    component: str | None = None,
    before_time: datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first. Page with `before_id`, or, for pages that stay exact when messages
    arrive late with older times, with `before_time` and `before_id` of the last row shown
    (the rows after it in (time, id) order)."""
    query = select(StatusMessageRow).order_by(
        StatusMessageRow.time.desc(), StatusMessageRow.id.desc()
    )
    filters = {
        StatusMessageRow.deployment_id: deployment_id,
        StatusMessageRow.client_id: client_id,
        StatusMessageRow.package_id: package_id,
        StatusMessageRow.message_id: message_id,
        StatusMessageRow.severity: severity,
        StatusMessageRow.dp_name: dp_name,
        StatusMessageRow.component: component,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(StatusMessageRow.time >= since)
    if until is not None:
        query = query.where(StatusMessageRow.time < until)
    if before_time is not None:
        query = query.where(
            StatusMessageRow.time <= before_time,
            or_(
                StatusMessageRow.time < before_time,
                and_(StatusMessageRow.time == before_time, StatusMessageRow.id < (before_id or 0)),
            ),
        )
    elif before_id is not None:
        query = query.where(StatusMessageRow.id < before_id)
    found = list(session.scalars(query.limit(min(limit, 1000))))
    carried = [m.uid for m in found if m.properties.get("has_output")]
    outputs = outputs_for(session, carried)
    return [
        {**message_dict(m), **output_fields(m, outputs.get(m.uid))}
        if m.uid in carried
        else message_dict(m)
        for m in found
    ]


def message_dict(m: StatusMessageRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "message_id": m.message_id,
        "severity": m.severity,
        "component": m.component,
        "client_id": m.client_id,
        "dp": m.dp_name,
        "deployment_id": m.deployment_id,
        "package_id": m.package_id,
        "insertion_strings": m.insertion_strings,
        "properties": m.properties,
        "text": m.text,
        "time": m.time.isoformat(),
        "received": m.received.isoformat(),
    }
