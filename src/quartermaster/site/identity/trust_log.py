"""The site's append-only trust log: every publish, approval, deployment change and key change.

Entries are written in the transaction of the change they describe, each naming the hash of
the one before (core/log_chain.py). Policy carries the head (seq and hash); clients keep the
newest head they saw and refuse a policy whose head does not extend it, fetching the entries
in between to check. `qm audit verify` checks the whole chain, from the database or a copy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.canonical import canonical_json
from quartermaster.core.log_chain import GENESIS, check_chain, entry_hash
from quartermaster.site.db import next_counter
from quartermaster.site.models import TrustLogEntry

COUNTER = "trust_log"
MAX_PAGE = 1000


def append(session: Session, kind: str, subject: str, details: dict[str, Any]) -> int:
    """Add an entry in the caller's transaction; the counter row lock orders writers."""
    seq = next_counter(session, COUNTER)
    previous = session.get(TrustLogEntry, seq - 1) if seq > 1 else None
    prev = previous.entry_hash if previous is not None else GENESIS
    entry = {
        "seq": seq,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kind": kind,
        "subject": subject[:200],
        "details": json.loads(canonical_json(details)),
        "prev": prev,
    }
    session.add(
        TrustLogEntry(
            seq=seq,
            time=entry["time"],
            kind=kind,
            subject=entry["subject"],
            details=canonical_json(entry["details"]).decode(),
            prev_hash=prev,
            entry_hash=entry_hash(entry),
        )
    )
    session.flush()
    return seq


def as_dict(row: TrustLogEntry) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "time": row.time,
        "kind": row.kind,
        "subject": row.subject,
        "details": json.loads(row.details),
        "prev": row.prev_hash,
        "hash": row.entry_hash,
    }


def head(session: Session) -> dict[str, Any]:
    row = session.scalar(select(TrustLogEntry).order_by(TrustLogEntry.seq.desc()).limit(1))
    return {"seq": 0, "hash": GENESIS} if row is None else {"seq": row.seq, "hash": row.entry_hash}


def entries(session: Session, after: int, upto: int | None = None) -> list[dict[str, Any]]:
    stmt = select(TrustLogEntry).where(TrustLogEntry.seq > after).order_by(TrustLogEntry.seq)
    if upto is not None:
        stmt = stmt.where(TrustLogEntry.seq <= upto)
    return [as_dict(r) for r in session.scalars(stmt.limit(MAX_PAGE))]


def all_entries(session: Session) -> list[dict[str, Any]]:
    return [as_dict(r) for r in session.scalars(select(TrustLogEntry).order_by(TrustLogEntry.seq))]


def verify(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a whole log from its first entry; LogBroken names the first bad entry."""
    last = check_chain(rows, 0, GENESIS)
    return {"entries": len(rows), "head": {"seq": len(rows), "hash": last}}
