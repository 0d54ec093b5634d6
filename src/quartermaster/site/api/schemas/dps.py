"""Distribution points as the administrator adds and validates them."""

from __future__ import annotations

from pydantic import Field

from quartermaster.site.api.schemas.common import Answer, ObjectId, Strict


class DPBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    boundaries: list[str] = Field(default_factory=list, max_length=1000)
    fallback: bool = False


class ValidateBody(Strict):
    package_id: ObjectId | None = Field(default=None, max_length=20)


class DPContentView(Answer):
    package_id: str
    source_version: int
    package_hash: str
    state: str
    bytes_done: int
    bytes_total: int
    reason: str
    last_validated: str | None


class DPHealthView(Answer):
    """Reachable, content state and validation results (site/distribution/health.py)."""

    level: str  # ok | warning | error | retired
    summary: str
    reachable: bool | None
    content: dict[str, int]
    mismatches: int
    last_mismatch: str | None


class DPSummary(Answer):
    name: str
    url: str
    boundaries: list[str]
    fallback: bool
    embedded: bool
    state: str
    enrolled: bool
    last_contact: str | None
    free_bytes: int | None
    used_bytes: int | None
    content: list[DPContentView]
    health: DPHealthView | None = None


class DPList(Answer):
    dps: list[DPSummary]


class DPContent(Answer):
    dp: str
    content: list[DPContentView]


class DPEnrollment(Answer):
    """The one-time enrollment token: shown in this answer only."""

    name: str
    enrollment_token: str


class DPValidation(Answer):
    dp: str
    versions_to_validate: int


class DPState(Answer):
    name: str
    state: str
