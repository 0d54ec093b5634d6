"""Clients: which clients to ask to poll now."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class NotifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50_000
    )
    collection: str | None = Field(default=None, min_length=1, max_length=200)
