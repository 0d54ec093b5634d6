"""Accounts, API tokens, the audit log and site settings, under `/api/v1` (docs/security.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from quartermaster.core.errors import InvalidInput
from quartermaster.site import settings
from quartermaster.site.api.common import AuditedRoute, Ctx, allow, require
from quartermaster.site.identity import accounts, audit
from quartermaster.site.identity.authorization import (
    Principal,
    allowed_actions,
    authorize,
    is_allowed,
)

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)

AccountName = Annotated[str, Field(min_length=1, max_length=64)]
Password = Annotated[str, Field(min_length=1, max_length=accounts.MAX_PASSWORD)]
Role = Annotated[str, Field(pattern="^(admin|operator|viewer)$")]
NamePath = Annotated[str, Path(min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountBody(Strict):
    name: AccountName
    role: Role
    password: Password | None = None


class RoleBody(Strict):
    role: Role


class PasswordBody(Strict):
    password: Password


class TokenBody(Strict):
    account: AccountName | None = None  # default: the caller's own account
    name: str = Field(default="", max_length=100)
    expires: datetime | None = None


class SettingsBody(Strict):
    require_approval: StrictBool | None = None  # "yes" is refused, not taken as true


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{what} has no time zone", "e.g. 2026-12-01T00:00Z")
    return value


@router.get("/me")
def me(principal: Annotated[Principal, Depends(require("self.read"))]) -> dict[str, Any]:
    """Who the caller is and every action it may perform (the console shows what fits)."""
    return {
        "account": principal.name,
        "role": principal.role,
        "token_id": principal.token_id,
        "actions": allowed_actions(principal),
    }


@router.get("/accounts", dependencies=[allow("account.read")])
def list_accounts(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {"accounts": accounts.list_accounts(session)}


@router.post("/accounts", status_code=201, dependencies=[allow("account.create")])
def create_account(body: AccountBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        account = accounts.create_account(session, body.name, body.role, body.password)
        return accounts.account_summary(account)


@router.post("/accounts/{name}/disable", dependencies=[allow("account.update")])
def disable_account(name: NamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_disabled(session, name, True))


@router.post("/accounts/{name}/enable", dependencies=[allow("account.update")])
def enable_account(name: NamePath, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_disabled(session, name, False))


@router.post("/accounts/{name}/role", dependencies=[allow("account.update")])
def set_role(name: NamePath, body: RoleBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_role(session, name, body.role))


@router.post("/accounts/{name}/password", dependencies=[allow("account.update")])
def set_password(name: NamePath, body: PasswordBody, ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return accounts.account_summary(accounts.set_password(session, name, body.password))


@router.get("/tokens")
def list_tokens(
    principal: Annotated[Principal, Depends(require("token.read"))],
    ctx: Ctx,
    account: str | None = Query(None, max_length=64),
) -> dict[str, Any]:
    """Admins see every token (or one account's); everyone else sees their own."""
    if account is None and not is_allowed(principal, "token.manage_others"):
        account = principal.name
    if account is not None and account != principal.name:
        authorize(principal, "token.manage_others")
    with ctx.db.session() as session:
        account_id = accounts.get_account(session, account).id if account else None
        return {"tokens": accounts.list_tokens(session, account_id)}


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenBody, ctx: Ctx, principal: Annotated[Principal, Depends(require("token.create"))]
) -> dict[str, Any]:
    """The token is in this answer and nowhere else: the site keeps only its hash."""
    name = body.account or principal.name
    if name != principal.name:
        authorize(principal, "token.manage_others")
    with ctx.db.session() as session:
        account = accounts.get_account(session, name)
        token, secret = accounts.create_token(
            session, account, body.name, _aware(body.expires, "expires")
        )
        return {**accounts.token_summary(token, account), "token": secret}


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require("token.revoke"))],
) -> dict[str, Any]:
    with ctx.db.session() as session:
        token, account = accounts.get_token(session, token_id)
        if account.name != principal.name:
            authorize(principal, "token.manage_others")
        accounts.revoke_token(session, token_id)
        return accounts.token_summary(token, account)


@router.get("/audit", dependencies=[allow("audit.read")])
def audit_log(
    ctx: Ctx,
    account: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=50),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=2**31 - 1),
) -> dict[str, Any]:
    with ctx.db.session() as session:
        return {
            "entries": audit.query(
                session,
                account=account,
                action=action,
                since=_aware(since, "since"),
                until=_aware(until, "until"),
                limit=limit,
                before_id=before_id,
            )
        }


@router.get("/settings", dependencies=[allow("settings.read")])
def get_settings(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return settings.get_settings(session)


@router.post("/settings")
def update_settings(
    body: SettingsBody,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require("settings.update"))],
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("no setting to change", 'e.g. {"require_approval": true}')
    with ctx.db.session() as session:
        return settings.update_settings(session, changes, principal.actor)
