"""Bad copies: client-reported mismatches and re-hash requests that keep DP content honest."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import points
from quartermaster.site.distribution.locations import content_locations
from quartermaster.site.models import (
    Client,
    DistributionPoint,
    DPContent,
    PackageVersion,
    StatusMessageRow,
)
from quartermaster.site.status.site_messages import raise_status

# A client's word alone never takes a copy out of service: any approved client may say
# anything. Its report only asks the DP to re-hash (the DP's own result decides), and only
# for a DP the site's locations answer gives that client, at most this often per client.
MISMATCH_REPORTS_PER_HOUR = 5
MISMATCH = 10075


def report_mismatch(
    session: Session, dp_name: str, package_hash: str, client_id: str, addresses: list[str]
) -> bool:
    """A client found bad bytes: ask the DP to revalidate; True if the report was acted on."""
    dp = session.scalar(select(DistributionPoint).where(DistributionPoint.name == dp_name))
    version = session.scalar(
        select(PackageVersion).where(PackageVersion.package_hash == package_hash)
    )
    if dp is None or version is None:
        return False
    content = session.get(DPContent, (dp.id, version.id))
    if content is None or content.state != "installed" or content.validate_requested:
        return False
    client = session.get(Client, client_id)
    reported = client.ip_addresses if client else []
    addresses = [*addresses, *(a for a in reported if isinstance(a, str))]
    if dp_name not in {loc["dp"] for loc in content_locations(session, package_hash, addresses)}:
        return False  # the site never sends this client there: nothing it could have seen
    content.validate_requested = True
    raise_status(
        session,
        2360,
        version.package_id,
        version.source_version,
        dp.name,
        client_id,
        dp_name=dp.name,
        package_id=version.package_id,
        client_id=client_id,  # so lists can name the client that reported it
    )
    return True


def mismatch_budget(session: Session, client_id: str, batch_received: datetime) -> int:
    """How many more of this client's mismatch reports may be acted on now: its reports
    received in the last hour before this batch count against MISMATCH_REPORTS_PER_HOUR."""
    earlier = session.scalar(
        select(func.count())
        .select_from(StatusMessageRow)
        .where(
            StatusMessageRow.client_id == client_id,
            StatusMessageRow.message_id == MISMATCH,
            StatusMessageRow.received > batch_received - timedelta(hours=1),
            StatusMessageRow.received < batch_received,
        )
    )
    return max(0, MISMATCH_REPORTS_PER_HOUR - (earlier or 0))


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
