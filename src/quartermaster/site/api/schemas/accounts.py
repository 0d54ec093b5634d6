"""Administrator accounts: a new account, its role and its password."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from quartermaster.site.api.schemas.common import Strict
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
