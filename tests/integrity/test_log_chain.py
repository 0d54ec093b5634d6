"""The trust log's hash chain without a site: extension, fork, rollback and gaps."""

from __future__ import annotations

from typing import Any

import pytest

from quartermaster.core.log_chain import GENESIS, LogBroken, check_chain, check_extends, entry_hash


def _chain(count: int, tag: str = "") -> list[dict[str, Any]]:
    entries, prev = [], GENESIS
    for seq in range(1, count + 1):
        entry = {
            "seq": seq,
            "time": "2026-12-03T06:00:00Z",
            "kind": "publish",
            "subject": f"QM100001 {seq}{tag}",
            "details": {},
            "prev": prev,
        }
        entry["hash"] = prev = entry_hash(entry)
        entries.append(entry)
    return entries


def test_a_later_head_extends_what_was_seen_and_a_fork_or_rollback_does_not() -> None:
    log = _chain(6)
    seen = log[2]
    check_extends(3, seen["hash"], 6, log[-1]["hash"], log[3:])
    with pytest.raises(LogBroken, match="rollback"):
        check_extends(3, seen["hash"], 2, log[1]["hash"], [])
    with pytest.raises(LogBroken, match="fork"):
        check_extends(3, seen["hash"], 3, _chain(3, "x")[-1]["hash"], [])
    other = _chain(6, "x")  # a rewritten history of the same length
    with pytest.raises(LogBroken, match="does not name the hash of entry 3"):
        check_extends(3, seen["hash"], 6, other[-1]["hash"], other[3:])
    with pytest.raises(LogBroken, match="do not lead to the signed head"):
        check_extends(3, seen["hash"], 6, other[-1]["hash"], log[3:])


def test_check_chain_names_the_missing_or_altered_entry() -> None:
    log = _chain(5)
    assert check_chain(log, 0, GENESIS) == log[-1]["hash"]
    with pytest.raises(LogBroken, match="log entry 3 is missing"):
        check_chain([e for e in log if e["seq"] != 3], 0, GENESIS)
    altered = [dict(e) for e in log]
    altered[1]["subject"] = "QM100001 99"
    with pytest.raises(LogBroken, match="log entry 2 does not match its recorded hash"):
        check_chain(altered, 0, GENESIS)
