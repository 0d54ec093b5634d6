"""API tokens, under `/api/v1/tokens` (docs/security.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from quartermaster.site.api.schemas.common import aware
from quartermaster.site.api.schemas.tokens import NewToken, TokenBody, TokenList, TokenSummary
from quartermaster.site.identity import accounts
from quartermaster.site.identity.authorization import (
    Principal,
    authorize,
    is_allowed,
)
from quartermaster.site.web.access import AuditedRoute, Ctx, require

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/tokens", response_model=TokenList)
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


@router.post("/tokens", response_model=NewToken, status_code=201)
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
            session, account, body.name, aware(body.expires, "expires")
        )
        return {**accounts.token_summary(token, account), "token": secret}


@router.post("/tokens/{token_id}/revoke", response_model=TokenSummary)
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
