"""Console sign-in sessions: a random cookie, a record of it in the database, its CSRF
token, and sign-in throttling.

The cookie is 32 random bytes and nothing else. The database keeps only its SHA-256 with
the account and the expiry (site/models.py ConsoleSessionRecord), so a copy of the
database (a backup, a readable site.db) mints no session, and every site process behind
a load balancer sees a sign-out, a password or role change or a disabled account at once:
they delete the records. Every request loads the account again as well.

A cookie that names no record (before sign-in) is still the base of the sign-in form's
CSRF token: the token is an HMAC keyed by the cookie, which only the browser holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import delete, select

from quartermaster.core.errors import QMError, Unauthorized
from quartermaster.core.hashing import token_hash
from quartermaster.site.context import SiteContext
from quartermaster.site.identity.accounts import principal_for
from quartermaster.site.identity.authorization import NOBODY, Credential, Principal
from quartermaster.site.models import Account, ConsoleSessionRecord, SignInFailure, utcnow

COOKIE = "qm_console"
FLASH_COOKIE = "qm_console_flash"
COOKIE_PATH = "/console"
LIFETIME = 12 * 3600  # seconds: sign in again after a working day
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class TooManyAttempts(QMError):
    code = "too_many_attempts"
    http_status = 429


@dataclass(frozen=True)
class ConsoleSession:
    """The browser's cookie, and the account it signs in (None: not signed in)."""

    token: str
    account_id: int | None = None

    @classmethod
    def anonymous(cls) -> ConsoleSession:
        return cls(secrets.token_urlsafe(32))


def start(ctx: SiteContext, account_id: int) -> ConsoleSession:
    """A new cookie on sign-in (a cookie planted before it is worthless) and its record."""
    session = ConsoleSession(secrets.token_urlsafe(32), account_id)
    now = utcnow()
    with ctx.db.session() as db:
        db.execute(delete(ConsoleSessionRecord).where(ConsoleSessionRecord.expires < now))
        db.add(
            ConsoleSessionRecord(
                token_hash=token_hash(session.token),
                account_id=account_id,
                started=now,
                expires=now + timedelta(seconds=LIFETIME),
            )
        )
    return session


def end(ctx: SiteContext, session: ConsoleSession) -> None:
    """Sign-out: the record goes, so a saved copy of the cookie is worth nothing."""
    with ctx.db.session() as db:
        db.execute(
            delete(ConsoleSessionRecord).where(
                ConsoleSessionRecord.token_hash == token_hash(session.token)
            )
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, purpose: str, data: str) -> str:
    return b64(hmac.new(key, f"{purpose}\n{data}".encode(), hashlib.sha256).digest())


def _cookie(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and _TOKEN.fullmatch(value) else None


def _record(ctx: SiteContext, token: str) -> ConsoleSessionRecord | None:
    with ctx.db.session() as db:
        record = db.get(ConsoleSessionRecord, token_hash(token))
        if record is None or record.expires <= utcnow():
            return None
        db.expunge(record)
        return record


def current(request: Request) -> ConsoleSession | None:
    """The browser's session (signed in or not), or None when it sent no usable cookie."""
    token = _cookie(request)
    if token is None:
        return None
    record = _record(request.app.state.ctx, token)
    return ConsoleSession(token, record.account_id if record else None)


def flash_signature(request: Request, value: str) -> str:
    """A one-time message is signed with the browser's own cookie; "" without one."""
    token = _cookie(request)
    return sign(token.encode(), "flash", value) if token else ""


def csrf_token(ctx: SiteContext, session: ConsoleSession) -> str:
    """The per-session token every console form carries in a hidden field."""
    return sign(session.token.encode(), "csrf", "console")


def csrf_valid(ctx: SiteContext, session: ConsoleSession | None, token: str) -> bool:
    return (
        session is not None and bool(token) and hmac.compare_digest(token, csrf_token(ctx, session))
    )


def set_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=LIFETIME,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def session_principal(request: Request, ctx: SiteContext, credential: Credential) -> Principal:
    """The `identify` the console gives `require()`: the signed-in account, or 401."""
    if credential is Credential.NONE:
        return NOBODY
    token = _cookie(request)
    record = _record(ctx, token) if token else None
    if record is None:
        raise Unauthorized(
            "sign in to use the console",
            "open /console/sign-in (a session ends on sign-out, a password or role change, "
            "or when the account is disabled)",
        )
    with ctx.db.session() as db:
        account = db.get(Account, record.account_id)
        if account is None or account.disabled:
            raise Unauthorized("your console session has ended", "sign in again")
        return principal_for(account)


class SignInThrottle:
    """At most `per_name` failed sign-ins to one account name from one address, and
    `per_address` from one address, in `window` seconds; further attempts from there wait.

    Failures are rows in the database: every site process counts the same ones and a
    restart forgets none. They are counted per address, so nobody can lock a name out
    for everyone else by failing on purpose. Behind a reverse proxy the address is the
    client's only when the proxy is trusted (docs/security.md, "Sign-in throttling").
    """

    def __init__(self, per_name: int = 5, per_address: int = 20, window: float = 900) -> None:
        self.per_name, self.per_address, self.window = per_name, per_address, window

    def check(self, ctx: SiteContext, name: str, address: str) -> None:
        since = utcnow() - timedelta(seconds=self.window)
        recent = SignInFailure.address == address[:64], SignInFailure.at > since
        with ctx.db.session() as db:
            for where, limit in (
                ((*recent, SignInFailure.name == name[:64]), self.per_name),
                (recent, self.per_address),
            ):
                times = db.scalars(
                    select(SignInFailure.at).where(*where).order_by(SignInFailure.at.desc())
                ).all()
                if len(times) >= limit:
                    oldest = times[limit - 1]
                    wait = int(self.window - (utcnow() - oldest).total_seconds()) // 60 + 1
                    raise TooManyAttempts(
                        "too many failed sign-ins", f"wait {wait} minute(s), then try again"
                    )

    def failed(self, ctx: SiteContext, name: str, address: str) -> None:
        now = utcnow()
        with ctx.db.session() as db:
            db.execute(
                delete(SignInFailure).where(SignInFailure.at < now - timedelta(seconds=self.window))
            )
            db.add(SignInFailure(name=name[:64], address=address[:64], at=now))

    def succeeded(self, ctx: SiteContext, name: str, address: str) -> None:
        with ctx.db.session() as db:
            db.execute(
                delete(SignInFailure).where(
                    SignInFailure.name == name[:64], SignInFailure.address == address[:64]
                )
            )


THROTTLE = SignInThrottle()
