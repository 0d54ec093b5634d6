"""Status messages the site itself raises (publishing, distribution, registration)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from quartermaster.core.status_catalog import lookup
from quartermaster.site.models import StatusMessageRow, utcnow


def raise_status(
    session: Session,
    message_id: int,
    *insertion: Any,
    dp_name: str = "",
    package_id: str | None = None,
    client_id: str | None = None,
    deployment_id: str | None = None,
    properties: dict[str, Any] | None = None,
) -> None:
    session.add(
        StatusMessageRow(
            **status_row(
                message_id,
                *insertion,
                dp_name=dp_name,
                package_id=package_id,
                client_id=client_id,
                deployment_id=deployment_id,
                properties=properties,
            )
        )
    )


def status_row(
    message_id: int,
    *insertion: Any,
    dp_name: str = "",
    package_id: str | None = None,
    client_id: str | None = None,
    deployment_id: str | None = None,
    properties: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The columns of a site-raised message, for the ORM or a Core insert."""
    message = lookup(message_id)
    strings = [str(s) for s in insertion]
    now = now or utcnow()
    return {
        "uid": f"site-{uuid.uuid4().hex}",
        "message_id": message_id,
        "severity": message.severity.value,
        "component": message.component,
        "client_id": client_id,
        "dp_name": dp_name,
        "package_id": package_id,
        "deployment_id": deployment_id,
        "insertion_strings": strings,
        "properties": properties or {},
        "text": message.render(strings),
        "time": now,
        "received": now,
    }
