"""Request model of release approvals: a statement and one approver's signature over it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quartermaster.site.api.schemas.common import Strict


class ApprovalBody(Strict):
    statement: dict[str, Any]
    keyid: str = Field(min_length=16, max_length=16, pattern="^[0-9a-f]{16}$")
    sig: str = Field(min_length=128, max_length=128, pattern="^[0-9a-f]{128}$")
