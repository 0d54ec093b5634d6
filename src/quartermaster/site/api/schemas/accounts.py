"""Administrator accounts: a new account, its role and its password."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from quartermaster.site.api.schemas.common import Answer, Strict
from quartermaster.site.identity import accounts

AccountName = Annotated[str, Field(min_length=1, max_length=64)]


Password = Annotated[str, Field(min_length=1, max_length=accounts.MAX_PASSWORD)]


Role = Annotated[str, Field(pattern="^(admin|operator|viewer)$")]


class AccountBody(Strict):
    name: AccountName
    role: Role
    password: Password | None = None


class RoleBody(Strict):
    role: Role


class PasswordBody(Strict):
    password: Password


class Me(Answer):
    account: str
    role: str
    token_id: int | None
    actions: list[str]


class AccountSummary(Answer):
    name: str
    role: str
    disabled: bool
    has_password: bool
    created: str
    password_changed: str | None


class AccountList(Answer):
    accounts: list[AccountSummary]
