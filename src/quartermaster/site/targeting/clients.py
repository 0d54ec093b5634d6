"""Client registration and authentication."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, NotFound
from quartermaster.core.ids import check_client_id
from quartermaster.site.json_limits import CLIENT_PROPERTIES, check_json, readable
from quartermaster.site.models import (
    Client,
)

_FACTS = {"hostname": 255, "os": 50, "os_version": 100, "architecture": 50, "agent_version": 50}


def check_facts(facts: dict[str, Any]) -> None:
    """What a client reports (at registration and with inventory) within its bounds, with
    no text a database or a list could choke on; 422 naming what is wrong."""
    for key, limit in _FACTS.items():
        value = facts.get(key, "")
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            raise InvalidInput(
                f"client fact {key!r} must be text of at most {limit} characters, without NUL"
            )
    if not facts.get("hostname"):
        raise InvalidInput("a client registers with its hostname")
    addresses = facts.get("ip_addresses", [])
    if not isinstance(addresses, list) or not all(
        isinstance(a, str) and len(a) <= 64 and "\x00" not in a for a in addresses
    ):
        raise InvalidInput("ip_addresses must be a list of addresses (text of at most 64)")
    check_json(facts.get("properties", {}), CLIENT_PROPERTIES)


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
        "properties": readable(client.properties, CLIENT_PROPERTIES),
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
