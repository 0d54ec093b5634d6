"""The client API's bodies (docs/protocol.md): registration and inventory facts, status batches."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quartermaster.site.api.schemas.common import Answer
from quartermaster.site.deployments.status_ingest import MAX_BATCH


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(default="", max_length=50)
    os_version: str = Field(default="", max_length=100)
    architecture: str = Field(default="", max_length=50)
    ip_addresses: list[str] = Field(default_factory=list, max_length=64)
    agent_version: str = Field(default="", max_length=50)
    properties: dict[str, Any] = Field(default_factory=dict, max_length=200)


class StatusBody(BaseModel):
    messages: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class PeerReport(BaseModel):
    """A peer's report (site/distribution/peers.py): its port, power and network facts, and
    the package versions it holds whole and verified."""

    model_config = ConfigDict(extra="forbid")
    port: int = Field(ge=1, le=65535)
    on_battery: bool = False
    metered: bool = False
    holds: list[str] = Field(default_factory=list, max_length=5000)
    revalidated: bool = False


class PeerAnswer(Answer):
    serve: bool
    boundary: str
    reason: str
    revalidate: bool


class Registered(Answer):
    """The client secret is in this answer and nowhere else."""

    client_id: str
    client_secret: str
    site_code: str
    approval: str
    signing_keys: list[dict[str, Any]]
    poll_interval: int


class InventoryAnswer(Answer):
    membership_changed: bool


class Rekeyed(Answer):
    client_id: str
    client_secret: str
