"""Client registration and authentication."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, NotFound
from quartermaster.core.hashing import token_hash
from quartermaster.core.ids import check_client_id, new_client_id
from quartermaster.site.context import SiteContext
from quartermaster.site.models import Client
from quartermaster.site.settings import require_approval
from quartermaster.site.site_status import raise_status

_FACTS = {"hostname": 255, "os": 50, "os_version": 100, "architecture": 50, "agent_version": 50}


def register(ctx: SiteContext, facts: dict[str, Any]) -> dict[str, Any]:
    for key, limit in _FACTS.items():
        value = facts.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"client fact {key!r} must be text of at most {limit} characters")
    if not facts.get("hostname"):
        raise InvalidInput("a client registers with its hostname")
    secret = "qmc_" + secrets.token_urlsafe(32)
    client = Client(
        client_id=new_client_id(),
        secret_hash=token_hash(secret),
        hostname=facts["hostname"],
        os=facts.get("os", ""),
        os_version=facts.get("os_version", ""),
        architecture=facts.get("architecture", ""),
        ip_addresses=list(facts.get("ip_addresses", [])),
        agent_version=facts.get("agent_version", ""),
        properties=dict(facts.get("properties", {})),
    )
    with ctx.db.session() as session:
        client.approval = "pending" if require_approval(session) else "approved"
        session.add(client)
        raise_status(session, 3001, client.client_id, client.hostname, client_id=client.client_id)
    return {
        "client_id": client.client_id,
        "client_secret": secret,
        "site_code": ctx.site_code,
        "approval": client.approval,
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
        "poll_interval": ctx.config.poll_interval,
    }


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
