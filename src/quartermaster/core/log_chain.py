"""The hash chain of the site's trust log: each entry names the hash of the one before.

An entry is {"seq", "time", "kind", "subject", "details", "prev"}; its hash is the SHA-256
of its canonical JSON. Removing, altering or inserting an entry changes every hash after
it, so whoever saw a later head (a client, an auditor's copy) notices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import IntegrityError
from quartermaster.core.hashing import sha256_bytes

GENESIS = "0" * 64


class LogBroken(IntegrityError):
    code = "log_broken"


def entry_hash(entry: dict[str, Any]) -> str:
    fields = {k: entry.get(k) for k in ("seq", "time", "kind", "subject", "details", "prev")}
    return sha256_bytes(canonical_json(fields))


def check_chain(entries: Sequence[dict[str, Any]], after_seq: int, after_hash: str) -> str:
    """The hash of the last entry, if `entries` continue the chain right after
    (`after_seq`, `after_hash`) one by one; LogBroken names the first entry that does not."""
    seq, prev = after_seq, after_hash
    for entry in entries:
        if entry.get("seq") != seq + 1:
            raise LogBroken(
                f"log entry {seq + 1} is missing (found {entry.get('seq')} after {seq})",
                "an entry was removed from the site's log",
            )
        if entry.get("prev") != prev:
            raise LogBroken(
                f"log entry {seq + 1} does not name the hash of entry {seq}",
                "the log was altered or rewritten before this entry",
            )
        actual = entry_hash(entry)
        if entry.get("hash") not in (None, actual):
            raise LogBroken(
                f"log entry {seq + 1} does not match its recorded hash",
                "the entry was altered after it was written",
            )
        seq, prev = seq + 1, actual
    return prev


def check_extends(
    seen_seq: int, seen_hash: str, head_seq: int, head_hash: str, entries: Sequence[Any]
) -> None:
    """The head (`head_seq`, `head_hash`) extends what was seen, proven by `entries`
    (seen_seq+1 .. head_seq); LogBroken otherwise: no silent forks, no rollback."""
    if head_seq < seen_seq:
        raise LogBroken(
            f"the log head {head_seq} is older than {seen_seq}, already seen (rollback)",
            "the site's database may have been restored from an old backup",
        )
    if head_seq == seen_seq:
        if head_hash != seen_hash:
            raise LogBroken(f"log entry {head_seq} differs from the one seen before (fork)")
        return
    wanted = [e for e in entries if isinstance(e, dict)]
    last = check_chain(wanted, seen_seq, seen_hash)
    if len(wanted) != head_seq - seen_seq or last != head_hash:
        raise LogBroken(
            f"the log entries {seen_seq + 1}..{head_seq} do not lead to the signed head",
            "the site served a log that is not the one its policy names",
        )
