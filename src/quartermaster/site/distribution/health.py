"""A distribution point's health: reachable, its content's state, and what validation and
clients said about its bytes.

Configuration Manager's content status counts a DP's copies as installed, in progress,
failed; here a copy can also fail validation, and clients report hash mismatches (10075)
before any validation ran. A DP that answers polls but served bad bytes in the last day is
not healthy until a validation (2361) after the last mismatch clears it; a DP that never
enrolled is not "active", it is waiting. The console, `qm dp list` and the API show this.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    PackageVersion,
    StatusMessageRow,
    utcnow,
)

#: A DP silent for longer than this (ten default polls) is not reachable.
DP_SILENCE = timedelta(minutes=10)
#: Hash mismatch reports this recent count against a DP's health.
MISMATCH_WINDOW = timedelta(days=1)
MISMATCH, VALIDATED, BAD_BLOBS = 10075, 2361, 2362
#: How the console groups a copy's state, as Configuration Manager's content status does.
CONTENT_GROUPS = {
    "installed": "installed",
    "pending": "in_progress",
    "distributing": "in_progress",
    "failed": "failed",
    "validation_failed": "validation_failed",
}


@dataclass
class DPHealth:
    """One DP's health: level ok | warning | error | retired, and why in one line."""

    level: str
    summary: str
    reachable: bool | None  # None: never enrolled or retired, so not asked
    content: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0  # hash mismatch reports in the last MISMATCH_WINDOW
    last_mismatch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def content_counts(content: list[dict[str, Any]]) -> dict[str, int]:
    """A DP's (or package's) copies per content-status group."""
    counts = {"installed": 0, "in_progress": 0, "failed": 0, "validation_failed": 0}
    for copy in content:
        counts[CONTENT_GROUPS.get(copy["state"], "in_progress")] += 1
    return counts


def mismatch_reports(
    session: Session, now: datetime | None = None
) -> dict[str, tuple[int, datetime | None, datetime | None]]:
    """Per DP name: mismatch reports in the window, the newest one, and the newest good
    validation (two grouped queries, however many DPs)."""
    since = (now or utcnow()) - MISMATCH_WINDOW
    found: dict[str, list[Any]] = defaultdict(lambda: [0, None, None])
    for name, count, newest in session.execute(
        select(StatusMessageRow.dp_name, func.count(), func.max(StatusMessageRow.time))
        .where(StatusMessageRow.message_id == MISMATCH, StatusMessageRow.time >= since)
        .group_by(StatusMessageRow.dp_name)
    ):
        found[name][0], found[name][1] = count, newest
    if found:
        for name, newest in session.execute(
            select(StatusMessageRow.dp_name, func.max(StatusMessageRow.time))
            .where(
                StatusMessageRow.message_id == VALIDATED,
                StatusMessageRow.dp_name.in_(list(found)),
            )
            .group_by(StatusMessageRow.dp_name)
        ):
            found[name][2] = newest
    return {name: (row[0], row[1], row[2]) for name, row in found.items()}


def dp_health(
    dp: dict[str, Any],
    mismatches: tuple[int, datetime | None, datetime | None] = (0, None, None),
    now: datetime | None = None,
) -> DPHealth:
    """Health of a DP as `points.list_dps` describes it, with its `mismatch_reports` row."""
    now = now or utcnow()
    counts = content_counts(dp["content"])
    reported, newest, cleared = mismatches
    newest_text = newest.isoformat() if newest else None
    if dp["state"] != "active":
        return DPHealth("retired", "retired", None, counts)
    if not dp["enrolled"]:
        return DPHealth(
            "warning", "never enrolled: waiting for `qm dp serve` to enroll", None, counts
        )
    last = datetime.fromisoformat(dp["last_contact"]) if dp["last_contact"] else None
    reachable = last is not None and now - last <= DP_SILENCE
    health = DPHealth("ok", "healthy", reachable, counts, reported, newest_text)
    problems: list[str] = []
    if not reachable:
        problems.append(
            "unreachable: no contact since "
            + (last.strftime("%Y-%m-%d %H:%M UTC") if last else "enrollment")
        )
    uncleared = reported and newest is not None and (cleared is None or cleared < newest)
    if uncleared:
        problems.append(f"{reported} hash mismatch report(s) in the last 24 h, not yet validated")
    if counts["validation_failed"]:
        problems.append(f"{counts['validation_failed']} copy(ies) failed validation")
    if counts["failed"]:
        problems.append(f"{counts['failed']} copy(ies) failed to distribute")
    if problems:
        health.level, health.summary = "error", "; ".join(problems)
    elif dp["content"] and not counts["installed"]:
        health.level = "warning"
        health.summary = f"no content installed yet: {counts['in_progress']} in progress"
    elif counts["in_progress"]:
        health.summary = f"healthy; distributing {counts['in_progress']} package version(s)"
    return health


def all_dp_health(
    session: Session, dps: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, DPHealth]:
    """Health of every DP in `dps`, by name."""
    reports = mismatch_reports(session, now)
    return {dp["name"]: dp_health(dp, reports.get(dp["name"], (0, None, None)), now) for dp in dps}


def last_message_per_package(
    session: Session, dp_name: str, scan: int = 500
) -> dict[str, dict[str, Any]]:
    """The newest status message about each package on one DP (its newest `scan`
    messages, one query): what the content status shows next to each copy."""
    rows = session.scalars(
        select(StatusMessageRow)
        .where(StatusMessageRow.dp_name == dp_name, StatusMessageRow.package_id.is_not(None))
        .order_by(StatusMessageRow.time.desc(), StatusMessageRow.id.desc())
        .limit(scan)
    )
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.package_id and row.package_id not in newest:
            newest[row.package_id] = {
                "message_id": row.message_id,
                "severity": row.severity,
                "text": row.text,
                "time": row.time.isoformat(),
            }
    return newest


def package_content_status(session: Session, package_id: str, scan: int = 500) -> dict[str, Any]:
    """A package's copies on every active DP by content-status group, each with the newest
    message about it on that DP (Configuration Manager's content status of one package)."""
    copies = session.execute(
        select(DistributionPoint.name, PackageVersion.source_version, DPContent)
        .join(DPContent, DPContent.dp_id == DistributionPoint.id)
        .join(PackageVersion, PackageVersion.id == DPContent.version_id)
        .where(PackageVersion.package_id == package_id, DistributionPoint.state == "active")
        .order_by(DistributionPoint.name, PackageVersion.source_version)
    ).all()
    newest: dict[str, dict[str, Any]] = {}
    for row in session.scalars(
        select(StatusMessageRow)
        .where(StatusMessageRow.package_id == package_id, StatusMessageRow.dp_name != "")
        .order_by(StatusMessageRow.time.desc(), StatusMessageRow.id.desc())
        .limit(scan)
    ):
        newest.setdefault(
            row.dp_name,
            {
                "message_id": row.message_id,
                "text": row.text,
                "time": row.time.isoformat(),
                "client_id": row.client_id,
            },
        )
    rows = [
        {
            "dp": name,
            "source_version": version,
            "state": copy.state,
            "group": CONTENT_GROUPS.get(copy.state, "in_progress"),
            "last_message": newest.get(name),
        }
        for name, version, copy in copies
    ]
    return {"counts": content_counts(rows), "copies": rows}
