"""Administrator accounts, their passwords and their API tokens.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)
and re-hashed on login when those defaults grow. API tokens are 256 random bits, so a plain
SHA-256 of a token is enough to store: only the hash is kept and the token is shown once.
A token carries no role of its own: it acts as its account, so disabling an account or
changing its role takes effect on every one of its tokens at the next request.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from quartermaster.core.hashing import token_hash
from quartermaster.site.identity.authorization import ACCOUNT_ROLES, Credential, Principal
from quartermaster.site.models import Account, ApiToken, ConsoleSessionRecord, utcnow

TOKEN_PREFIX = "qma_"
MIN_PASSWORD, MAX_PASSWORD = 12, 1024
MAX_TOKEN_LIFETIME = timedelta(days=3660)
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so timing does not tell."""
    return _hasher.hash(secrets.token_hex(16))


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"account name {name!r} is not valid",
            "use 1-64 lower-case letters, digits, '.', '_', '@' or '-'",
        )
    return name


def check_role(role: str) -> str:
    if role not in ACCOUNT_ROLES:
        raise InvalidInput(f"role {role!r} does not exist", "use admin, operator or viewer")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            "choose a longer pass phrase",
        )
    return password


# --- accounts ---------------------------------------------------------------------------


def create_account(session: Session, name: str, role: str, password: str | None = None) -> Account:
    check_name(name)
    check_role(role)
    if session.scalar(select(Account).where(Account.name == name)) is not None:
        raise Conflict(f"account {name!r} already exists", "choose another name")
    account = Account(name=name, role=role)
    if password is not None:
        account.password_hash = _hasher.hash(check_password(password))
        account.password_changed = utcnow()
    session.add(account)
    session.flush()
    return account


def get_account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise NotFound(f"account {name!r} does not exist", "list accounts with `qm account list`")
    return account


def account_summary(account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "role": account.role,
        "disabled": account.disabled,
        "has_password": account.password_hash is not None,
        "created": account.created.isoformat(),
        "password_changed": account.password_changed.isoformat()
        if account.password_changed
        else None,
    }


def list_accounts(session: Session) -> list[dict[str, Any]]:
    return [account_summary(a) for a in session.scalars(select(Account).order_by(Account.name))]


def set_password(session: Session, name: str, password: str) -> Account:
    account = get_account(session, name)
    account.password_hash = _hasher.hash(check_password(password))
    account.password_changed = utcnow()
    end_console_sessions(session, account)
    return account


def set_role(session: Session, name: str, role: str) -> Account:
    account = get_account(session, name)
    if check_role(role) != "admin":
        _keep_an_admin(session, account)
    if account.role != role:
        end_console_sessions(session, account)
    account.role = role
    return account


def set_disabled(session: Session, name: str, disabled: bool) -> Account:
    account = get_account(session, name)
    if disabled:
        _keep_an_admin(session, account)
    if disabled:
        end_console_sessions(session, account)
    account.disabled = disabled
    return account


def end_console_sessions(session: Session, account: Account) -> None:
    """Sign the account out of the console everywhere, at once (every site process reads
    the same rows)."""
    session.execute(
        delete(ConsoleSessionRecord).where(ConsoleSessionRecord.account_id == account.id)
    )


def _keep_an_admin(session: Session, account: Account) -> None:
    """Refuse the change that would leave the site without an enabled admin."""
    if account.role != "admin" or account.disabled:
        return
    # Locks the admin rows on PostgreSQL, so two admins cannot demote each other at once.
    admins = session.scalars(
        select(Account.id)
        .where(Account.role == "admin", Account.disabled.is_(False))
        .with_for_update()
    ).all()
    if not set(admins) - {account.id}:
        raise Conflict(
            f"{account.name!r} is the last enabled admin account",
            "create or enable another admin first",
        )


def authenticate_password(session: Session, username: str, password: str) -> Account:
    """The console's login check; one message for every failure, so it tells nothing."""
    account = session.scalar(select(Account).where(Account.name == username))
    stored = account.password_hash if account is not None else None
    try:
        _hasher.verify(stored or _dummy_hash(), password)
        verified = stored is not None
    except (VerificationError, InvalidHashError):
        verified = False
    if not verified or account is None or account.disabled:
        raise Unauthorized(
            "wrong account name or password, or the account is disabled",
            "an administrator sets passwords with `qm account password NAME`",
        )
    if _hasher.check_needs_rehash(stored or ""):
        account.password_hash = _hasher.hash(password)
    return account


def principal_for(account: Account, token: ApiToken | None = None) -> Principal:
    """The principal an account acts as (the console builds one from its session)."""
    return Principal(
        Credential.ACCOUNT,
        account.name,
        account.role,
        account_id=account.id,
        token_id=token.id if token is not None else None,
    )


# --- API tokens -------------------------------------------------------------------------


def create_token(
    session: Session, account: Account, label: str = "", expires: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `account`; the secret is returned here and never stored."""
    if account.disabled:
        raise Conflict(f"account {account.name!r} is disabled", "enable it first")
    if expires is not None:
        if expires.tzinfo is None:
            raise InvalidInput("the expiry has no time zone", "e.g. 2027-01-01T00:00Z or +30d")
        if not utcnow() < expires <= utcnow() + MAX_TOKEN_LIFETIME:
            raise InvalidInput(
                "a token expires in the future, within ten years", "e.g. --expires +30d"
            )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        account_id=account.id, name=label[:100], token_hash=token_hash(secret), expires=expires
    )
    session.add(token)
    session.flush()
    return token, secret


def get_token(session: Session, token_id: int) -> tuple[ApiToken, Account]:
    row = session.execute(
        select(ApiToken, Account)
        .join(Account, Account.id == ApiToken.account_id)
        .where(ApiToken.id == token_id)
    ).first()
    if row is None:
        raise NotFound(f"token {token_id} does not exist", "list tokens with `qm token list`")
    return row[0], row[1]


def token_summary(token: ApiToken, account: Account) -> dict[str, Any]:
    now = utcnow()
    state = (
        "revoked"
        if token.revoked
        else "expired"
        if token.expires is not None and token.expires <= now
        else "active"
    )
    return {
        "id": token.id,
        "account": account.name,
        "name": token.name,
        "state": state,
        "created": token.created.isoformat(),
        "expires": token.expires.isoformat() if token.expires else None,
    }


def list_tokens(session: Session, account_id: int | None = None) -> list[dict[str, Any]]:
    query = (
        select(ApiToken, Account)
        .join(Account, Account.id == ApiToken.account_id)
        .order_by(ApiToken.id)
    )
    if account_id is not None:
        query = query.where(ApiToken.account_id == account_id)
    return [token_summary(t, a) for t, a in session.execute(query).all()]


def revoke_token(session: Session, token_id: int) -> tuple[ApiToken, Account]:
    token, account = get_token(session, token_id)
    token.revoked = True
    return token, account


def authenticate_token(session: Session, secret: str) -> Principal:
    row = session.execute(
        select(ApiToken, Account)
        .join(Account, Account.id == ApiToken.account_id)
        .where(ApiToken.token_hash == token_hash(secret))
    ).first()
    if row is None:
        raise Unauthorized(
            "the API token is not valid",
            "use a token from `qm token create` or SITE_HOME/admin.token",
        )
    token, account = row[0], row[1]
    if token.revoked:
        raise Unauthorized(f"API token {token.id} was revoked", "create a new one")
    if token.expires is not None and token.expires <= utcnow():
        raise Unauthorized(f"API token {token.id} expired", "create a new one")
    if account.disabled:
        raise Unauthorized(
            f"account {account.name!r} is disabled", "ask an administrator to enable it"
        )
    return principal_for(account, token)
