"""The audit log: who changed what, when, from where, and how it ended.

The admin API writes a row *before* a change runs (outcome "started") and completes it
after (ok / failed), each in its own transaction: a change whose row could not be written
never runs, so no change escapes the log; a crash in between leaves "started", which is
honest. Refused attempts are logged as "denied". Secrets never reach a row: request bodies
are stored with every password, token, secret or credential replaced.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.site.identity.authorization import Principal
from quartermaster.site.models import AuditEntry

STARTED, OK, FAILED, DENIED = "started", "ok", "failed", "denied"
_SECRET_WORDS = ("password", "secret", "token", "credential")
_MAX_DETAILS = 4000


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret-looking field replaced."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _bounded(details: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(details, default=str)
    if len(text) <= _MAX_DETAILS:
        return details
    return {"truncated": text[:_MAX_DETAILS]}


def begin(
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    source: str,
    details: dict[str, Any],
) -> int:
    entry = AuditEntry(
        account=principal.actor[:100],
        action=action,
        target=target[:300],
        outcome=STARTED,
        source=source[:100],
        details=_bounded(redact(details)),
    )
    session.add(entry)
    session.flush()
    return entry.id


def finish(
    session: Session,
    entry_id: int,
    outcome: str,
    status: int,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    entry = session.get(AuditEntry, entry_id)
    if entry is None:
        return
    entry.outcome = outcome[:30]
    entry.status = status
    if target and not entry.target:
        entry.target = target[:300]
    if details:
        entry.details = _bounded(redact({**entry.details, **details}))


def record(
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    outcome: str,
    source: str = "",
    details: dict[str, Any] | None = None,
    status: int | None = None,
) -> None:
    """A one-step entry: a refused attempt, or a change a client made to its own identity."""
    session.add(
        AuditEntry(
            account=principal.actor[:100],
            action=action,
            target=target[:300],
            outcome=outcome,
            status=status,
            source=source[:100],
            details=_bounded(redact(details or {})),
        )
    )


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "time": entry.time.isoformat(),
        "account": entry.account,
        "action": entry.action,
        "object": entry.target,
        "outcome": entry.outcome,
        "status": entry.status,
        "source": entry.source,
        "details": entry.details,
    }


def query(
    session: Session,
    *,
    account: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; page with `before_id` (the smallest id of the previous page)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if account:
        stmt = stmt.where(AuditEntry.account == account)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.time >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.time < until)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return [entry_dict(e) for e in session.scalars(stmt)]
