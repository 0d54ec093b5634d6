"""Console sign-in sessions: a signed cookie, its CSRF token, and sign-in throttling.

The cookie holds no secret and no role: only a random session ID, the account's database
ID, when the session started and when the account's password last changed. Every request
loads the account again, so disabling it, changing its role or its password takes effect
at once. The signing key lives in the site database (not in one process's memory or home),
so every site process behind a load balancer accepts the cookies of the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request, Response
from sqlalchemy.exc import IntegrityError

from quartermaster.core.errors import QMError, Unauthorized
from quartermaster.site.context import SiteContext
from quartermaster.site.identity.accounts import principal_for
from quartermaster.site.identity.authorization import NOBODY, Credential, Principal
from quartermaster.site.models import Account, SiteSetting

COOKIE = "qm_console"
FLASH_COOKIE = "qm_console_flash"
COOKIE_PATH = "/console"
LIFETIME = 12 * 3600  # seconds: sign in again after a working day
KEY_SETTING = "console.session_key"  # a site_settings row; not one of the public settings

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


class TooManyAttempts(QMError):
    code = "too_many_attempts"
    http_status = 429


def session_key(ctx: SiteContext) -> bytes:
    """The site's cookie-signing key, created by the first site process that needs it."""
    with _keys_lock:
        key = _keys.get(ctx.db.url)
        if key is None:
            key = _keys[ctx.db.url] = _load_or_create_key(ctx)
        return key


def _load_or_create_key(ctx: SiteContext) -> bytes:
    with ctx.db.session() as session:
        row = session.get(SiteSetting, KEY_SETTING)
        if row is not None:
            return bytes.fromhex(str(row.value))
    try:
        with ctx.db.session() as session:
            session.add(
                SiteSetting(name=KEY_SETTING, value=secrets.token_hex(32), updated_by="web console")
            )
    except IntegrityError:
        pass  # another site process created it a moment ago: use theirs
    with ctx.db.session() as session:
        row = session.get(SiteSetting, KEY_SETTING)
        assert row is not None
        return bytes.fromhex(str(row.value))


@dataclass(frozen=True)
class ConsoleSession:
    """What the cookie says; `account_id` is None before sign-in (the sign-in form's CSRF)."""

    sid: str
    account_id: int | None = None
    started: int = 0
    password_changed: float | None = None

    @classmethod
    def anonymous(cls) -> ConsoleSession:
        return cls(secrets.token_urlsafe(18), started=int(time.time()))

    def signed_in(self, account: Account) -> ConsoleSession:
        """A new session ID on sign-in, so a session ID planted before it is worthless."""
        changed = account.password_changed.timestamp() if account.password_changed else None
        return replace(ConsoleSession.anonymous(), account_id=account.id, password_changed=changed)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, purpose: str, data: str) -> str:
    return b64(hmac.new(key, f"{purpose}\n{data}".encode(), hashlib.sha256).digest())


def encode(ctx: SiteContext, session: ConsoleSession) -> str:
    payload = b64(
        json.dumps(
            {
                "s": session.sid,
                "a": session.account_id,
                "t": session.started,
                "p": session.password_changed,
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{sign(session_key(ctx), 'session', payload)}"


def decode(ctx: SiteContext, value: str | None) -> ConsoleSession | None:
    """The session of a cookie with a valid signature that has not expired, or None."""
    if not value or value.count(".") != 1 or len(value) > 1000:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(signature, sign(session_key(ctx), "session", payload)):
        return None
    try:
        data: dict[str, Any] = json.loads(unb64(payload))
        session = ConsoleSession(str(data["s"]), data["a"], int(data["t"]), data["p"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= time.time() - session.started < LIFETIME:
        return None
    return session


def current(request: Request) -> ConsoleSession | None:
    return decode(request.app.state.ctx, request.cookies.get(COOKIE))


def csrf_token(ctx: SiteContext, session: ConsoleSession) -> str:
    """The per-session token every console form carries in a hidden field."""
    return sign(session_key(ctx), "csrf", session.sid)


def csrf_valid(ctx: SiteContext, session: ConsoleSession | None, token: str) -> bool:
    return (
        session is not None and bool(token) and hmac.compare_digest(token, csrf_token(ctx, session))
    )


def set_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    ctx: SiteContext = request.app.state.ctx
    response.set_cookie(
        COOKIE,
        encode(ctx, session),
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
    session = decode(ctx, request.cookies.get(COOKIE))
    if session is None or session.account_id is None:
        raise Unauthorized("sign in to use the console", "open /console/sign-in")
    with ctx.db.session() as db:
        account = db.get(Account, session.account_id)
        changed = (
            account.password_changed.timestamp()
            if account is not None and account.password_changed
            else None
        )
        if account is None or account.disabled or changed != session.password_changed:
            raise Unauthorized(
                "your console session has ended",
                "sign in again (the account was disabled or its password changed)",
            )
        return principal_for(account)


class SignInThrottle:
    """At most `per_name` failed sign-ins per account name and `per_address` per address in
    `window` seconds, per site process; further attempts wait for the window to pass."""

    def __init__(self, per_name: int = 5, per_address: int = 20, window: float = 900) -> None:
        self.limits = {"name": per_name, "address": per_address}
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("name", name), ("address", address)):
                failures = self._failures[key]
                while failures and now - failures[0] > self.window:
                    failures.popleft()
                if len(failures) >= self.limits[key[0]]:
                    wait = int(self.window - (now - failures[0])) // 60 + 1
                    raise TooManyAttempts(
                        "too many failed sign-ins", f"wait {wait} minute(s), then try again"
                    )

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures[("name", name)].append(now)
            self._failures[("address", address)].append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("name", name), None)


THROTTLE = SignInThrottle()
