"""API tokens: a new token for an account."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from quartermaster.site.api.schemas.accounts import AccountName
from quartermaster.site.api.schemas.common import Strict


class TokenBody(Strict):
    account: AccountName | None = None  # default: the caller's own account
    name: str = Field(default="", max_length=100)
    expires: datetime | None = None
