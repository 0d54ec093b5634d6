"""Distribution points as the administrator adds and validates them."""

from __future__ import annotations

from pydantic import Field

from quartermaster.site.api.schemas.common import ObjectId, Strict


class DPBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    boundaries: list[str] = Field(default_factory=list, max_length=1000)
    fallback: bool = False


class ValidateBody(Strict):
    package_id: ObjectId | None = Field(default=None, max_length=20)
