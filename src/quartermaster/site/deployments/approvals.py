"""Release approval: approvers sign a statement naming one package version (its hash and
program commands) or application revision, and the collections it may be deployed to.

The site only stores and hands out the signatures; it checks them on arrival so that a typo
fails early, but it is the client that decides, against the approvers its pinned root names
(client/approval_check.py). A site that holds no root cannot take approvals: without a root
no client would know whom to believe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.trust_roles import (
    ANY_COLLECTION,
    APPROVAL_TYPE,
    application_terms,
    program_digest,
    release_statement,
    valid_signers,
)
from quartermaster.site.applications.records import get_application
from quartermaster.site.content.packages import get_package
from quartermaster.site.context import SiteContext
from quartermaster.site.identity import trust_log
from quartermaster.site.models import (
    ApplicationRevision,
    Collection,
    PackageVersion,
    Program,
    ReleaseApproval,
)
from quartermaster.site.policy_serial import bump_policy_serial


def _version(session: Session, package_id: str, source_version: int) -> PackageVersion:
    get_package(session, package_id)
    row = session.scalar(
        select(PackageVersion).where(
            PackageVersion.package_id == package_id,
            PackageVersion.source_version == source_version,
        )
    )
    if row is None:
        raise NotFound(
            f"package {package_id} has no version {source_version}",
            f"see its versions with `qm package show {package_id}`",
        )
    return row


def _collections(session: Session, names: Sequence[str]) -> list[str]:
    if not names:
        raise InvalidInput(
            "an approval names the collections the release may go to",
            "pass --collection NAME (repeatable), or --any-collection",
        )
    if list(names) == [ANY_COLLECTION]:
        return [ANY_COLLECTION]
    known = set(session.scalars(select(Collection.name).where(Collection.name.in_(names))))
    missing = sorted(set(names) - known)
    if missing:
        raise NotFound(f"no collection named {', '.join(missing)}", "see `qm collection list`")
    return sorted(set(names))


def package_statement(
    ctx: SiteContext,
    package_id: str,
    source_version: int,
    collections: Sequence[str],
    programs: Sequence[str],
) -> dict[str, Any]:
    """What an approver of this package version signs: its hash and the commands of the
    programs they name. Never "every program": a program added later by someone else
    must not ride along on an approval given for another one."""
    if not programs:
        raise InvalidInput(
            "an approval names the programs it allows", "pass --program NAME (repeatable)"
        )
    with ctx.db.session() as session:
        row = _version(session, package_id, source_version)
        found = {
            p.name: program_digest(p.spec)
            for p in session.scalars(
                select(Program).where(Program.package_id == package_id, Program.name.in_(programs))
            )
        }
        missing = sorted(set(programs) - found.keys())
        if missing:
            raise NotFound(f"package {package_id} has no program {', '.join(missing)}")
        return release_statement(
            ctx.site_code,
            package_id,
            source_version,
            row.package_hash,
            found,
            _collections(session, collections),
        )


def application_statement(
    ctx: SiteContext, app_id: str, revision: int | None, collections: Sequence[str]
) -> dict[str, Any]:
    """What an approver of an application revision signs: the package hash, the install and
    uninstall commands, the detection rules and the account it runs as."""
    with ctx.db.session() as session:
        application = get_application(session, app_id)
        number = revision or application.current_revision
        row = session.scalar(
            select(ApplicationRevision).where(
                ApplicationRevision.app_id == app_id, ApplicationRevision.revision == number
            )
        )
        if row is None:
            raise NotFound(f"application {app_id} has no revision {number}")
        version = _version(session, row.package_id, row.source_version)
        spec = row.spec
        terms = application_terms(
            app_id, number, spec["install"], spec["uninstall"], spec["detection"], spec["run_as"]
        )
        return release_statement(
            ctx.site_code,
            row.package_id,
            row.source_version,
            version.package_hash,
            {},
            _collections(session, collections),
            terms,
        )


def record_approval(
    ctx: SiteContext, statement: Any, keyid: str, signature: str, account: str
) -> dict[str, Any]:
    """Keep one approver's signature, after checking it names a real release and verifies
    against an approver key of the site's current root."""
    root = ctx.roots.current()
    if root is None:
        raise Conflict(
            "this site has no root metadata, so no client could check an approval",
            "create one with `qm keys root init` (docs/security.md)",
        )
    if not isinstance(statement, dict) or statement.get("type") != APPROVAL_TYPE:
        raise InvalidInput("the approval does not carry a release statement")
    if statement.get("site_code") != ctx.site_code:
        raise InvalidInput(f"the statement is for site {statement.get('site_code')}")
    approvers = root.role_keys("approver")
    if keyid not in approvers:
        raise Conflict(
            f"key {keyid} is not an approver key of root version {root.version}",
            "the root key holders add approvers (`qm keys root edit --add-approver`)",
        )
    if not valid_signers(
        {"signed": statement, "signatures": [{"keyid": keyid, "sig": signature}]}, approvers
    ):
        raise InvalidInput("the approval signature does not verify", "sign the statement again")
    package_id, source_version = statement.get("package_id"), statement.get("source_version")
    if not isinstance(package_id, str) or not isinstance(source_version, int):
        raise InvalidInput("the statement names no package version")
    text = canonical_json(statement).decode()
    digest = sha256_bytes(text.encode())
    application = statement.get("application") or {}
    with ctx.db.session() as session:
        row = _version(session, package_id, source_version)
        if row.package_hash != statement.get("package_hash"):
            raise Conflict(
                f"the statement names package hash {statement.get('package_hash')}, but "
                f"version {source_version} of {package_id} has {row.package_hash}",
                "an approval counts only for the exact content it names",
            )
        exists = session.scalar(
            select(ReleaseApproval).where(
                ReleaseApproval.statement_digest == digest, ReleaseApproval.keyid == keyid
            )
        )
        if exists is None:
            session.add(
                ReleaseApproval(
                    package_hash=row.package_hash,
                    package_id=package_id,
                    source_version=source_version,
                    app_id=application.get("app_id"),
                    revision=application.get("revision"),
                    statement=text,
                    statement_digest=digest,
                    keyid=keyid,
                    signature=signature,
                    account=account[:100],
                )
            )
            trust_log.append(
                session,
                "approval",
                f"{application.get('app_id') or package_id} {source_version}",
                {"statement": digest, "keyid": keyid, "package_hash": row.package_hash},
            )
            bump_policy_serial(session)
    return {"statement_digest": digest, "keyid": keyid, "recorded": exists is None}


def approvals_for(session: Session, hashes: Iterable[str]) -> list[dict[str, Any]]:
    """Every approval of these package hashes, as policy carries them: one envelope per
    distinct statement with all its signatures."""
    wanted = sorted(set(hashes))
    if not wanted:
        return []
    grouped: dict[str, dict[str, Any]] = {}
    rows = session.scalars(
        select(ReleaseApproval)
        .where(ReleaseApproval.package_hash.in_(wanted))
        .order_by(ReleaseApproval.id)
    )
    for row in rows:
        envelope = grouped.setdefault(
            row.statement_digest, {"signed": json.loads(row.statement), "signatures": []}
        )
        envelope["signatures"].append({"keyid": row.keyid, "sig": row.signature})
    return list(grouped.values())


def approval_summary(ctx: SiteContext, session: Session, package_id: str) -> list[dict[str, Any]]:
    """Per version of a package: valid approvals against the current root, and whether the
    threshold is met (what `qm package show` and the console's pending list show)."""
    root = ctx.roots.current()
    threshold = root.approval_threshold if root else 0
    approvers = root.role_keys("approver") if root else {}
    versions = session.scalars(
        select(PackageVersion)
        .where(PackageVersion.package_id == package_id)
        .order_by(PackageVersion.source_version)
    ).all()
    found = approvals_for(session, [v.package_hash for v in versions])
    summary = []
    for version in versions:
        statements = [e for e in found if e["signed"]["package_hash"] == version.package_hash]
        best = max((len(valid_signers(e, approvers)) for e in statements), default=0)
        summary.append(
            {
                "source_version": version.source_version,
                "package_hash": version.package_hash,
                "approvals": best,
                "threshold": threshold,
                "pending": best < threshold,
                "statements": [
                    {
                        "collections": e["signed"]["collections"],
                        "application": (e["signed"].get("application") or {}).get("app_id"),
                        "approvers": sorted(valid_signers(e, approvers)),
                    }
                    for e in statements
                ],
            }
        )
    return summary


def package_approvals(ctx: SiteContext, package_id: str) -> list[dict[str, Any]]:
    """`approval_summary` in its own transaction (the package page and `qm package show`)."""
    with ctx.db.session() as session:
        return approval_summary(ctx, session, package_id)


def pending_releases(ctx: SiteContext) -> dict[str, Any]:
    """Current package versions that still need approvals (the console's list)."""
    from quartermaster.site.models import Package

    root = ctx.roots.current()
    rows: list[dict[str, Any]] = []
    with ctx.db.session() as session:
        for package in session.scalars(select(Package).order_by(Package.name)):
            for entry in approval_summary(ctx, session, package.package_id):
                if entry["pending"] and entry["source_version"] == package.current_version:
                    rows.append({"package_id": package.package_id, "name": package.name, **entry})
    return {
        "required": bool(root and root.approval_threshold),
        "threshold": root.approval_threshold if root else 0,
        "pending": rows,
    }
