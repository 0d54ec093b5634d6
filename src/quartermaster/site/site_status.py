"""Status messages the site itself raises (publishing, distribution, registration)."""

from __future__ import annotations

import uuid
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
    message = lookup(message_id)
    strings = [str(s) for s in insertion]
    session.add(
        StatusMessageRow(
            uid=f"site-{uuid.uuid4().hex}",
            message_id=message_id,
            severity=message.severity.value,
            component=message.component,
            client_id=client_id,
            dp_name=dp_name,
            package_id=package_id,
            deployment_id=deployment_id,
            insertion_strings=strings,
            properties=properties or {},
            text=message.render(strings),
            time=utcnow(),
        )
    )
