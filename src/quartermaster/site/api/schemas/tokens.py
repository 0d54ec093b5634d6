"""API tokens: a new token for an account."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from quartermaster.site.api.schemas.accounts import AccountName
from quartermaster.site.api.schemas.common import Answer, Strict


class TokenBody(Strict):
    account: AccountName | None = None  # default: the caller's own account
    name: str = Field(default="", max_length=100)
    expires: datetime | None = None


class TokenSummary(Answer):
    id: int
    account: str
    name: str
    state: str
    created: str
    expires: str | None


class TokenList(Answer):
    tokens: list[TokenSummary]


class NewToken(TokenSummary):
    """The token itself is in this answer and nowhere else."""

    token: str
