"""Release approval, checked on the client: a deployment runs only if approvers named by the
pinned root signed exactly what it would run, for the collection it came through.

The site (or whoever holds its database and online key) can put anything in policy; what
it cannot make is an approver's signature. So for every deployment the client finds a
release statement that (1) a threshold of approver keys signed, (2) names this package hash
and these program commands, or this application revision's commands and detection rules
(and those of every application it depends on or supersedes), and (3) allows the
deployment's collection. The first of the three that fails names the refusal's status
message: 10082, 10084 or 10083.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.trust_roles import (
    ANY_COLLECTION,
    Root,
    application_terms,
    program_digest,
    valid_signers,
)

THRESHOLD, COMMANDS, SCOPE = 10082, 10084, 10083
_CHECK_NAMES = {
    THRESHOLD: "approval threshold",
    COMMANDS: "approved commands",
    SCOPE: "approved scope",
}


@dataclass(frozen=True)
class Refusal:
    message_id: int
    reason: str

    @property
    def check(self) -> str:
        return _CHECK_NAMES[self.message_id]


class ApprovalIndex:
    """The approvals policy carries, each signature checked once against the root.

    `verified` holds signatures already checked (approvals never change, so a release's
    signatures are verified the first time a client sees them, not at every poll); it is
    keyed by key ID, signature and the statement's digest, and a key the current root no
    longer names does not count however it was verified before.
    """

    def __init__(self, payload: dict[str, Any], root: Root, verified: set[str]) -> None:
        self.root = root
        self.threshold = root.approval_threshold
        self.verified = verified
        self.added: set[str] = set()
        approvers = root.role_keys("approver")
        self.by_hash: dict[str, list[tuple[dict[str, Any], int]]] = {}
        for envelope in payload.get("approvals") or []:
            statement = envelope.get("signed") if isinstance(envelope, dict) else None
            if not isinstance(statement, dict) or statement.get("site_code") != root.site_code:
                continue
            count = self._count(envelope, statement, approvers)
            self.by_hash.setdefault(str(statement.get("package_hash")), []).append(
                (statement, count)
            )

    def _count(
        self, envelope: dict[str, Any], statement: dict[str, Any], approvers: dict[str, Any]
    ) -> int:
        digest = sha256_bytes(json.dumps(statement, sort_keys=True).encode())
        known: set[str] = set()
        unknown = []
        for entry in envelope.get("signatures") or []:
            if not isinstance(entry, dict) or entry.get("keyid") not in approvers:
                continue
            mark = f"{entry['keyid']}:{entry.get('sig')}:{digest}"
            if mark in self.verified:
                known.add(str(entry["keyid"]))
            else:
                unknown.append((entry, mark))
        if unknown and len(known) < self.threshold:
            fresh = valid_signers(
                {"signed": statement, "signatures": [e for e, _ in unknown]}, approvers
            )
            for entry, mark in unknown:
                if entry["keyid"] in fresh:
                    self.added.add(mark)
            known |= fresh
        return len(known)

    def check(
        self,
        package_hash: str,
        package_id: str,
        source_version: int,
        matches: Callable[[dict[str, Any]], bool],
        collection: str | None,
        what: str,
    ) -> Refusal | None:
        """None if some statement passes all three checks; else the furthest failure."""
        candidates = [
            (s, n)
            for s, n in self.by_hash.get(package_hash, [])
            if s.get("package_id") == package_id and s.get("source_version") == source_version
        ]
        best = max((n for _, n in candidates), default=0)
        signed = [s for s, n in candidates if n >= self.threshold]
        if not signed:
            return Refusal(
                THRESHOLD,
                f"{what}: {best} of {self.threshold} approver signatures for package "
                f"{package_id} version {source_version} (hash {package_hash[:16]}...)",
            )
        exact = [s for s in signed if matches(s)]
        if not exact:
            return Refusal(
                COMMANDS, f"{what}: the commands or detection rules are not the approved ones"
            )
        if collection is None:
            return None
        if any(
            ANY_COLLECTION in s.get("collections", []) or collection in s.get("collections", [])
            for s in exact
        ):
            return None
        allowed = sorted({c for s in exact for c in s.get("collections", [])})
        return Refusal(
            SCOPE,
            f"{what}: collection {collection!r} is outside the approved scope "
            f"({', '.join(allowed) or 'none'})",
        )


def refusals(
    payload: dict[str, Any], root: Root | None, verified: set[str] | None = None
) -> dict[str, Refusal]:
    """deployment ID -> why it may not run; empty when the root requires no approval.
    Signatures verified now are added to `verified` (see ApprovalIndex)."""
    if root is None or root.approval_threshold == 0:
        return {}
    known = verified if verified is not None else set()
    index = ApprovalIndex(payload, root, known)
    applications = payload.get("applications") or {}
    found: dict[str, Refusal] = {}
    for entry in payload.get("deployments") or []:
        ref = entry.get("application")
        if ref:
            refusal = _application(index, applications, str(ref.get("app_id")), entry)
        else:
            refusal = _package(index, entry)
        if refusal is not None:
            found[str(entry.get("deployment_id"))] = refusal
    known |= index.added
    return found


def _package(index: ApprovalIndex, entry: dict[str, Any]) -> Refusal | None:
    program = entry.get("program") or {}
    digest = program_digest(program)
    name = program.get("name")

    def matches(statement: dict[str, Any]) -> bool:
        return (
            statement.get("application") is None
            and (statement.get("programs") or {}).get(name) == digest
        )

    return index.check(
        entry["package_hash"],
        entry["package_id"],
        entry["source_version"],
        matches,
        str(entry.get("collection") or ""),
        f"program {name!r}",
    )


def _application(
    index: ApprovalIndex, applications: dict[str, Any], app_id: str, entry: dict[str, Any]
) -> Refusal | None:
    """The deployed application within its collection, and every application it may install
    or remove on the way (dependencies, superseded ones) in any collection."""
    pending, seen = [app_id], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        app = applications.get(current) or {}
        terms = application_terms(
            current,
            app.get("revision"),  # type: ignore[arg-type]
            app.get("install") or {},
            app.get("uninstall"),
            app.get("detection"),
            str(app.get("run_as")),
        )

        def matches(statement: dict[str, Any], terms: dict[str, Any] = terms) -> bool:
            return statement.get("application") == terms

        refusal = index.check(
            str(app.get("package_hash")),
            str(app.get("package_id")),
            app.get("source_version"),  # type: ignore[arg-type]
            matches,
            str(entry.get("collection") or "") if current == app_id else None,
            f"application {current} revision {app.get('revision')}",
        )
        if refusal is not None:
            return refusal
        pending.extend(app.get("depends") or [])
        pending.extend(str(s.get("app_id")) for s in app.get("supersedes") or [])
    return None
