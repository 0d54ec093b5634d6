"""Client registration and authentication."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import NotFound
from quartermaster.core.ids import check_client_id
from quartermaster.site.models import (
    Client,
)


def get_client(session: Session, client_id: str) -> Client:
    client = session.get(Client, check_client_id(client_id))
    if client is None:
        raise NotFound(
            f"client {client_id} is not registered", "list clients with `qm client list`"
        )
    return client


def client_summary(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "hostname": client.hostname,
        "os": client.os,
        "os_version": client.os_version,
        "architecture": client.architecture,
        "ip_addresses": client.ip_addresses,
        "agent_version": client.agent_version,
        "properties": client.properties,
        "approval": client.approval,
        "rekey_required": client.rekey_required,
        "registered": client.registered.isoformat(),
        "last_policy_request": client.last_policy_request.isoformat()
        if client.last_policy_request
        else None,
    }


def list_clients(
    session: Session,
    search: str = "",
    limit: int = 100,
    offset: int = 0,
    approval: str | None = None,
) -> list[dict[str, Any]]:
    query = select(Client).order_by(Client.hostname).limit(limit).offset(offset)
    if search:
        query = query.where(Client.hostname.ilike(f"%{search}%"))
    if approval:
        query = query.where(Client.approval == approval)
    return [client_summary(c) for c in session.scalars(query)]
