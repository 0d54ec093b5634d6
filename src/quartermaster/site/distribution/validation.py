"""Bad copies: client-reported mismatches and re-hash requests that keep DP content honest."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import points
from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    PackageVersion,
    utcnow,
)
from quartermaster.site.status.site_messages import raise_status


def report_mismatch(session: Session, dp_name: str, package_hash: str, client_id: str) -> None:
    """A client found bad bytes: take the copy out of service and ask the DP to revalidate."""
    dp = session.scalar(select(DistributionPoint).where(DistributionPoint.name == dp_name))
    version = session.scalar(
        select(PackageVersion).where(PackageVersion.package_hash == package_hash)
    )
    if dp is None or version is None:
        return
    content = session.get(DPContent, (dp.id, version.id))
    if content is None:
        return
    content.validate_requested = True
    if content.state == "installed":
        content.state = "validation_failed"
        content.updated = utcnow()
        raise_status(
            session,
            2360,
            version.package_id,
            version.source_version,
            dp.name,
            client_id,
            dp_name=dp.name,
            package_id=version.package_id,
        )


def request_validation(session: Session, dp_name: str, package_id: str | None) -> int:
    dp = points.get_dp(session, dp_name)
    query = select(DPContent).where(DPContent.dp_id == dp.id)
    if package_id:
        query = query.where(
            DPContent.version_id.in_(
                select(PackageVersion.id).where(PackageVersion.package_id == package_id)
            )
        )
    rows = list(session.scalars(query))
    for content in rows:
        content.validate_requested = True
    return len(rows)


def validate_dp(ctx: SiteContext, dp_name: str, package_id: str | None = None) -> int:
    """Ask a DP to re-hash its copies (of one package, or all); how many versions it will."""
    with ctx.db.session() as session:
        count = request_validation(session, dp_name, package_id)
    ctx.distribution_changed()
    return count
