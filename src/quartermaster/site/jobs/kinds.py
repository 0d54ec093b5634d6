"""What each kind of job does.

- `snapshot.create`, `snapshot.update`: snapshot a package's source folder into a new
  version (site/content/packages.py), then queue its distribution. Resumable: a version is
  published in one transaction at the end, so an interrupted snapshot published nothing,
  and the blobs it had stored are found already held when it runs again.
- `distribution`: follows one package version until every DP that carries it holds it
  (`installed`) or failed; progress is DPs done and bytes over all DPs.
- `validation`: follows a DP re-hashing what it holds until it has reported every version
  it was asked to.
- `gc`: garbage collection. With a package (`qm package prune`) it applies the package's
  retention first; then it sweeps the library of what no live or in-grace version names
  (site/content/retention.py). The site submits one every `gc_interval_seconds`; at most
  one per target is queued or running (a unique index on the jobs table), so several site
  processes never sweep side by side. Resumable: retention and sweep are idempotent.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from quartermaster.core.errors import QMError
from quartermaster.core.manifest import DEFAULT_PLATFORM
from quartermaster.core.program import ProgramSpec
from quartermaster.site.content import packages, retention
from quartermaster.site.distribution import points
from quartermaster.site.models import DistributionPoint, DPContent, Package, PackageVersion, utcnow

if TYPE_CHECKING:
    from quartermaster.site.context import SiteContext
    from quartermaster.site.jobs.runner import JobContext, Work

SNAPSHOT_CREATE, SNAPSHOT_UPDATE = "snapshot.create", "snapshot.update"
DISTRIBUTION, VALIDATION = "distribution", "validation"
GARBAGE_COLLECTION = "gc"
LIBRARY = "library"  # the target of a garbage collection of no one package
WATCH_EVERY = 0.5  # seconds between looks at the DPs' reports
STALLED = timedelta(hours=1)  # no DP moved for this long: the job fails, saying which
# A DP silent for this long is not waited for (listed in the result as not waited for):
# it fetches the version when it is back, as always.
OFFLINE = timedelta(minutes=5)


class JobFailed(QMError):
    code = "job_failed"


def create_package(ctx: SiteContext, job: JobContext) -> dict[str, Any]:
    p = job.params
    with ctx.db.session() as session:  # published by an attempt that died just after
        done = session.get(Package, p["package_id"])
        if done is not None:
            return _snapshot_result(job, p["package_id"], done.current_version, True)
    published = packages.create_package(
        ctx,
        p["name"],
        p["source"],
        [ProgramSpec.from_dict(spec) for spec in p["programs"]],
        p.get("manufacturer", ""),
        p.get("version_label", ""),
        p.get("platform", DEFAULT_PLATFORM),
        package_id=p["package_id"],
        progress=job.report,
        tmp=job.tmp,
        outside_links=p.get("outside_links", "refuse"),
    )
    return _snapshot_result(
        job, published["package_id"], published["source_version"], True, published
    )


def update_package(ctx: SiteContext, job: JobContext) -> dict[str, Any]:
    package_id, base = job.params["package_id"], job.params["base_version"]
    with ctx.db.session() as session:
        package = packages.get_package(session, package_id)
        if job.attempts > 1 and package.current_version > base:  # an earlier attempt's
            return _snapshot_result(job, package_id, package.current_version, True)
    published = packages.update_package(
        ctx,
        package_id,
        progress=job.report,
        tmp=job.tmp,
        outside_links=job.params.get("outside_links"),
    )
    return _snapshot_result(
        job, package_id, published["source_version"], bool(published["changed"]), published
    )


def _snapshot_result(
    job: JobContext,
    package_id: str,
    version: int,
    changed: bool,
    published: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "package_id": package_id,
        "source_version": version,
        "changed": changed,
        "distribution_job": None,
    }
    for key in (
        "skipped_links",
        "skipped_link_count",
    ):  # links to what is not in the package, left out
        if published and key in published:
            result[key] = published[key]
    if changed:
        result["distribution_job"] = job.submit(
            DISTRIBUTION,
            f"{package_id} v{version}",
            {"package_id": package_id, "source_version": version},
        )
    return result


def follow_distribution(ctx: SiteContext, job: JobContext) -> dict[str, Any]:
    package_id, version = job.params["package_id"], job.params["source_version"]
    with ctx.db.session() as session:
        row = session.scalar(
            select(PackageVersion).where(
                PackageVersion.package_id == package_id, PackageVersion.source_version == version
            )
        )
        if row is None:
            raise JobFailed(f"package {package_id} has no version {version}")
        version_id = row.id

    def states(session: Any) -> tuple[dict[str, DPContent], list[str]]:
        rows = session.execute(
            select(DistributionPoint.name, DistributionPoint.last_contact, DPContent)
            .join(DPContent, DPContent.dp_id == DistributionPoint.id)
            .where(DPContent.version_id == version_id, DistributionPoint.state == "active")
        ).all()
        since = utcnow() - OFFLINE
        offline = sorted(n for n, seen, _ in rows if seen is None or seen < since)
        return {n: c for n, _, c in rows if n not in offline}, offline

    return _follow(ctx, job, states, ("installed",))


def follow_validation(ctx: SiteContext, job: JobContext) -> dict[str, Any]:
    dp_name, package_id = job.params["dp"], job.params.get("package_id")
    with ctx.db.session() as session:
        dp_id = points.get_dp(session, dp_name).id
        query = select(PackageVersion.id, PackageVersion.package_id, PackageVersion.source_version)
        if package_id:
            query = query.where(PackageVersion.package_id == package_id)
        labels = {vid: f"{pid} v{ver}" for vid, pid, ver in session.execute(query)}

    def states(session: Any) -> tuple[dict[str, DPContent], list[str]]:
        rows = session.scalars(
            select(DPContent).where(
                DPContent.dp_id == dp_id, DPContent.version_id.in_(list(labels))
            )
        ).all()
        return {labels[c.version_id]: c for c in rows}, []

    def validated(content: DPContent) -> bool:
        return not content.validate_requested

    return _follow(ctx, job, states, validated)


def _follow(
    ctx: SiteContext,
    job: JobContext,
    read: Any,
    done_states: Any,
) -> dict[str, Any]:
    """Watch rows until each is done or failed; progress = rows done, bytes over all."""
    last_change, last_seen = utcnow(), None
    while True:
        job.check()
        with ctx.db.session() as session:
            rows, offline = read(session)
            seen = {k: (c.state, c.bytes_done, c.validate_requested) for k, c in rows.items()}
            done = {k for k, c in rows.items() if _is_done(c, done_states)}
            failed = {
                k: c.reason or c.state
                for k, c in rows.items()
                if k not in done
                and c.state in ("failed", "validation_failed")
                and not c.validate_requested
            }
            bytes_done = sum(c.bytes_done for c in rows.values())
            bytes_total = sum(c.bytes_total for c in rows.values())
        job.report(len(done), bytes_done, len(rows), max(bytes_total, bytes_done))
        if len(done) + len(failed) == len(rows):
            result = {"done": sorted(done), "failed": failed, "not_waited_for": offline}
            if failed:
                raise JobFailed(
                    "; ".join(f"{name}: {reason}" for name, reason in sorted(failed.items()))
                )
            return result
        if seen != last_seen:
            last_seen, last_change = seen, utcnow()
        elif utcnow() - last_change > STALLED:
            waiting = sorted(set(rows) - done - set(failed))
            raise JobFailed(
                f"no progress for {STALLED} from: {', '.join(waiting)}",
                "check those DPs with `qm dp list`",
            )
        time.sleep(WATCH_EVERY)


def _is_done(content: DPContent, done_states: Any) -> bool:
    if callable(done_states):
        return bool(done_states(content))
    return content.state in done_states


def collect_garbage(ctx: SiteContext, job: JobContext) -> dict[str, Any]:
    """Prune one package (params: package_id, keep) or none, then sweep the library."""
    package_id = job.params.get("package_id")
    try:
        if package_id:
            return retention.prune_package(ctx, package_id, job.params.get("keep"))
        return {"library": retention.collect_garbage(ctx).to_dict()}
    except OSError as exc:
        raise JobFailed(
            f"the content library sweep failed: {exc}",
            "fix the library's storage (permissions, space, the bucket); the next garbage "
            "collection tries again",
        ) from None


WORK: dict[str, Work] = {
    SNAPSHOT_CREATE: create_package,
    SNAPSHOT_UPDATE: update_package,
    DISTRIBUTION: follow_distribution,
    VALIDATION: follow_validation,
    GARBAGE_COLLECTION: collect_garbage,
}
