"""Clients: which clients to ask to poll now."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from quartermaster.site.api.schemas.common import Answer


class NotifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50_000
    )
    collection: str | None = Field(default=None, min_length=1, max_length=200)


class ClientSummary(Answer):
    client_id: str
    hostname: str
    os: str
    os_version: str
    architecture: str
    ip_addresses: list[Any]
    agent_version: str
    properties: dict[str, Any]
    approval: str
    rekey_required: bool
    registered: str
    last_policy_request: str | None


class ClientList(Answer):
    clients: list[ClientSummary]


class Notified(Answer):
    notified: int
