"""What DP agents report: copy states and disk use, turned into states and status messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    PackageVersion,
    utcnow,
)
from quartermaster.site.status.site_messages import raise_status

_STATES = {"distributing", "installed", "failed"}


def record_report(session: Session, dp: DistributionPoint, report: dict[str, Any]) -> None:
    dp.last_contact = utcnow()
    if report.get("free_bytes") is not None:  # disk use, as the DP's store sees it
        dp.free_bytes = int(report["free_bytes"])
    if report.get("used_bytes") is not None:
        dp.used_bytes = int(report["used_bytes"])
    for item in report.get("contents", []):
        version = session.scalar(
            select(PackageVersion).where(PackageVersion.package_hash == item["package_hash"])
        )
        if version is None or item["state"] not in _STATES:
            continue
        content = session.get(DPContent, (dp.id, version.id))
        if content is None:
            continue
        _apply_report(session, dp, version, content, item)


def _apply_report(
    session: Session,
    dp: DistributionPoint,
    version: PackageVersion,
    content: DPContent,
    item: dict[str, Any],
) -> None:
    state, previous = item["state"], content.state
    args = (version.package_id, version.source_version, dp.name)
    if item.get("validated"):
        content.last_validated = utcnow()
        content.validate_requested = False
        bad = int(item.get("bad_blobs", 0))
        raise_status(
            session,
            2362 if bad else 2361,
            *args,
            bad or version.file_count,
            dp_name=dp.name,
            package_id=version.package_id,
        )
    if state == "distributing" and previous not in ("distributing",):
        raise_status(
            session,
            2342,
            *args,
            int(item.get("bytes_total", 0)),
            dp_name=dp.name,
            package_id=version.package_id,
        )
    elif state == "installed" and previous != "installed":
        raise_status(
            session,
            2330,
            *args,
            int(item.get("bytes_transferred", 0)),
            dp_name=dp.name,
            package_id=version.package_id,
        )
        _retire_older(session, dp.id, version)
    elif state == "failed" and previous != "failed":
        raise_status(
            session,
            2302,
            *args,
            item.get("reason", ""),
            dp_name=dp.name,
            package_id=version.package_id,
        )
    if content.validate_requested and state == "installed" and not item.get("validated"):
        state = "validation_failed"  # stays out of content locations until revalidated
    content.state = state
    content.bytes_done = int(item.get("bytes_done", content.bytes_done))
    content.bytes_total = int(item.get("bytes_total", content.bytes_total))
    content.reason = str(item.get("reason", ""))[:2000]
    content.updated = utcnow()


def _retire_older(session: Session, dp_id: int, version: PackageVersion) -> None:
    older = select(PackageVersion.id).where(
        PackageVersion.package_id == version.package_id,
        PackageVersion.source_version < version.source_version,
    )
    session.execute(
        delete(DPContent).where(DPContent.dp_id == dp_id, DPContent.version_id.in_(older))
    )
