"""The DP API's bodies (docs/protocol.md): enrollment and content reports."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quartermaster.site.api.schemas.common import Answer


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enrollment_token: str = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=2000)


MAX_BYTES = 2**62  # within a SQL BIGINT


class ContentReport(BaseModel):
    package_hash: str = Field(min_length=64, max_length=64)
    state: str = Field(pattern="^(distributing|installed|failed)$")
    bytes_done: int = Field(default=0, ge=0, le=MAX_BYTES)
    bytes_total: int = Field(default=0, ge=0, le=MAX_BYTES)
    bytes_transferred: int = Field(default=0, ge=0, le=MAX_BYTES)
    reason: str = Field(default="", max_length=2000)
    validated: bool = False
    bad_blobs: int = Field(default=0, ge=0, le=MAX_BYTES)


class ReportBody(BaseModel):
    free_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    used_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    contents: list[ContentReport] = Field(default_factory=list, max_length=10000)


class Enrolled(Answer):
    """The DP credential is in this answer and nowhere else."""

    dp: str
    credential: str
    site_code: str
    signing_keys: list[dict[str, Any]]


class Assignments(Answer):
    dp: str
    validate_interval: int
    sources: list[str]
    assignments: list[dict[str, Any]]
    signing_keys: dict[str, Any]


class ReportAccepted(Answer):
    ok: bool
