"""Which package versions each DP must hold, and the assignment list a DP agent asks for."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.site import settings
from quartermaster.site.context import SiteContext
from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    PackageDP,
    PackageVersion,
    PrunedVersion,
    utcnow,
)


def carry_on_all_dps(session: Session, package_id: str) -> None:
    for dp_id in session.scalars(
        select(DistributionPoint.id).where(DistributionPoint.state == "active")
    ):
        session.add(PackageDP(package_id=package_id, dp_id=dp_id))
    session.flush()


def assign_latest(session: Session, dp_id: int, package_id: str) -> None:
    latest = session.scalar(
        select(PackageVersion)
        .where(PackageVersion.package_id == package_id)
        .order_by(PackageVersion.source_version.desc())
        .limit(1)
    )
    if latest is not None and session.get(DPContent, (dp_id, latest.id)) is None:
        session.add(DPContent(dp_id=dp_id, version_id=latest.id, bytes_total=latest.total_size))


def assign_version(session: Session, version: PackageVersion) -> None:
    """A new version goes to every DP that carries its package; older copies stay until then."""
    dp_ids = session.scalars(
        select(PackageDP.dp_id).where(PackageDP.package_id == version.package_id)
    )
    for dp_id in dp_ids:
        session.add(DPContent(dp_id=dp_id, version_id=version.id, bytes_total=version.total_size))


def grace(session: Session) -> timedelta:
    return timedelta(seconds=settings.get_settings(session)["content_grace_seconds"])


def in_grace(session: Session, now: datetime | None = None) -> list[PrunedVersion]:
    """Pruned versions whose bytes must still be kept (a download may be under way)."""
    cutoff = (now or utcnow()) - grace(session)
    return list(session.scalars(select(PrunedVersion).where(PrunedVersion.pruned > cutoff)))


VALIDATE_INTERVAL = 86400


def assignments(ctx: SiteContext, session: Session, dp: DistributionPoint) -> dict[str, Any]:
    dp.last_contact = utcnow()
    rows = session.execute(
        select(DPContent, PackageVersion)
        .join(PackageVersion, PackageVersion.id == DPContent.version_id)
        .where(DPContent.dp_id == dp.id)
        .order_by(PackageVersion.package_id, PackageVersion.source_version)
    ).all()
    others = session.scalars(
        select(DistributionPoint.url).where(
            DistributionPoint.id != dp.id,
            DistributionPoint.state == "active",
            DistributionPoint.embedded.is_(False),
        )
    ).all()
    return {
        "dp": dp.name,
        "validate_interval": VALIDATE_INTERVAL,
        # How long a DP keeps a version no longer assigned: downloads may be under way.
        "content_grace_seconds": int(grace(session).total_seconds()),
        "sources": [*others, f"{ctx.content_url}/library"],
        "library": f"{ctx.content_url}/library",  # the only source a DP authenticates to
        "assignments": [
            {
                "package_id": v.package_id,
                "source_version": v.source_version,
                "package_hash": v.package_hash,
                "state": c.state,
                "validate": c.validate_requested,
            }
            for c, v in rows
        ],
    }
