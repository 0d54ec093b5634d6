"""Administrator accounts, under `/api/v1`: who the caller is (`/me`) and the accounts
(docs/security.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from quartermaster.site.api.schemas.accounts import (
    AccountBody,
    AccountList,
    AccountSummary,
    Me,
    PasswordBody,
    RoleBody,
)
from quartermaster.site.identity import accounts
from quartermaster.site.identity.authorization import (
    Principal,
    allowed_actions,
)
from quartermaster.site.web.access import AuditedRoute, Ctx, allow, require

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)

NamePath = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/me", response_model=Me)
def me(principal: Annotated[Principal, Depends(require("self.read"))]) -> dict[str, Any]:
    """Who the caller is and every action it may perform (the console shows what fits)."""
    return {
        "account": principal.name,
        "role": principal.role,
        "token_id": principal.token_id,
        "actions": allowed_actions(principal),
    }


@router.get("/accounts", response_model=AccountList, dependencies=[allow("account.read")])
def list_accounts(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"accounts": accounts.list_accounts(session)}


@router.post(
    "/accounts",
    response_model=AccountSummary,
    status_code=201,
    dependencies=[allow("account.create")],
)
def create_account(body: AccountBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        account = accounts.create_account(session, body.name, body.role, body.password)
        return accounts.account_summary(account)


@router.post(
    "/accounts/{name}/disable",
    response_model=AccountSummary,
    dependencies=[allow("account.update")],
)
def disable_account(name: NamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_disabled(session, name, True))


@router.post(
    "/accounts/{name}/enable", response_model=AccountSummary, dependencies=[allow("account.update")]
)
def enable_account(name: NamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_disabled(session, name, False))


@router.post(
    "/accounts/{name}/role", response_model=AccountSummary, dependencies=[allow("account.update")]
)
def set_role(name: NamePath, body: RoleBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_role(session, name, body.role))


@router.post(
    "/accounts/{name}/password",
    response_model=AccountSummary,
    dependencies=[allow("account.update")],
)
def set_password(name: NamePath, body: PasswordBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_password(session, name, body.password))
