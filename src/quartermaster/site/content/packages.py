"""Packages, their immutable versions and their programs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.ids import check_object_id, object_id
from quartermaster.core.manifest import DEFAULT_PLATFORM, Manifest
from quartermaster.core.program import ProgramSpec
from quartermaster.site import source_roots
from quartermaster.site.content_library import MAX_LISTED, Progress, Snapshot, check_source_tree
from quartermaster.site.context import SiteContext
from quartermaster.site.db import next_counter
from quartermaster.site.distribution import assignment, points, validation
from quartermaster.site.identity import trust_log
from quartermaster.site.models import (
    Application,
    ApplicationRevision,
    DistributionPoint,
    DPContent,
    Package,
    PackageVersion,
    Program,
    PrunedVersion,
    utcnow,
)
from quartermaster.site.policy_serial import bump_policy_serial
from quartermaster.site.status.site_messages import raise_status

DEFAULT_KEEP = 3  # versions a package keeps besides those in use (site/content/retention.py)


def get_package(session: Session, package_id: str) -> Package:
    package_id = check_object_id(package_id)
    package = session.get(Package, package_id)
    if package is None:
        raise NotFound(
            f"package {package_id} does not exist", "list packages with `qm package list`"
        )
    return package


def _source_guard(ctx: SiteContext) -> Callable[[Path], None]:
    """Sources only from the roots set on the site host, never from a Quartermaster home."""
    return lambda real: source_roots.check_source(ctx.home, real)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a package name is 1 to 200 characters", "pass --name NAME")
    return name


def check_new_package(
    ctx: SiteContext,
    name: str,
    source: str,
    programs: list[ProgramSpec],
    platform: str = DEFAULT_PLATFORM,
    outside_links: str = "refuse",
) -> str:
    """What a request refuses before a job or an ID: the name, the programs, the source
    folder, its place (the source roots) and every entry in it. The snapshot checks again
    what it opens (the folder may change in between)."""
    name = _check_name(name)
    names = [p.name for p in programs]
    if len(set(names)) != len(names):
        raise Conflict("two programs have the same name", "give each program its own name")
    check_source_tree(Path(source), _source_guard(ctx), platform, outside_links)
    return name


def same_name_warnings(ctx: SiteContext, name: str, version_label: str = "") -> list[str]:
    """A new package named like one that exists (same name and version label, in any case)
    is allowed, but lists and deployments would show two alike: say so."""
    with ctx.db.session() as session:
        alike = session.scalars(
            select(Package.package_id)
            .where(
                func.lower(Package.name) == name.strip().lower(),
                func.lower(Package.version_label) == version_label.strip().lower(),
            )
            .order_by(Package.package_id)
        ).all()
    if not alike:
        return []
    label = f" {version_label.strip()}" if version_label.strip() else ""
    return [
        f"{', '.join(alike)} already {'has' if len(alike) == 1 else 'have'} the name "
        f"{name.strip()!r}{label}: lists and deployments will show packages alike; give this "
        "one another name or a version label"
    ]


def allocate_package_id(ctx: SiteContext) -> str:
    with ctx.db.session() as session:
        return object_id(ctx.site_code, next_counter(session, "package"))


def create_package(
    ctx: SiteContext,
    name: str,
    source: str,
    programs: list[ProgramSpec],
    manufacturer: str = "",
    version_label: str = "",
    platform: str = DEFAULT_PLATFORM,
    package_id: str | None = None,
    progress: Progress | None = None,
    tmp: Path | None = None,
    outside_links: str = "refuse",
) -> dict[str, Any]:
    """Snapshot the source as version 1 and publish it to every DP, under `package_id`
    (allocated beforehand by a job's request) or a new ID.

    `platform` (docs/protocol.md) decides the file-name rules and whether links are kept;
    every later version keeps it (it is in the manifest). So does `outside_links` (kept on
    the package): the links it leaves out are named in the answer."""
    name = _check_name(name)  # the rest is checked by the snapshot, before it reads
    if len({p.name for p in programs}) != len(programs):
        raise Conflict("two programs have the same name", "give each program its own name")
    source_path = Path(source)
    with ctx.library.writing():  # from the first blob stored until the version names it
        # validates the folder (roots, homes, every entry) before any ID is used
        snapshot = ctx.library.snapshot(
            source_path, _source_guard(ctx), platform, progress, tmp, outside_links
        )
        with ctx.db.session() as session:
            if package_id is None:
                package_id = object_id(ctx.site_code, next_counter(session, "package"))
            session.add(
                Package(
                    package_id=package_id,
                    name=name,
                    manufacturer=manufacturer,
                    version_label=version_label,
                    source_path=str(source_path),
                    outside_links=outside_links,
                )
            )
            session.flush()
            for spec in programs:
                session.add(Program(package_id=package_id, name=spec.name, spec=spec.to_dict()))
            trust_log.append(
                session, "package.create", package_id, {"programs": [p.to_dict() for p in programs]}
            )
            assignment.carry_on_all_dps(session, package_id)
            _publish(
                ctx,
                session,
                package_id,
                1,
                Manifest(
                    ctx.site_code,
                    package_id,
                    1,
                    tuple(snapshot.files),
                    platform,
                    tuple(snapshot.links),
                ),
                snapshot.new_bytes,
            )
    ctx.distribution_changed()
    return {"package_id": package_id, "source_version": 1, **_skipped(snapshot)}


def _skipped(snapshot: Snapshot) -> dict[str, Any]:
    """The links to what is not in the package that were left out: counted, and named up to a
    bound (a job's result is a database row)."""
    if not snapshot.skipped_links:
        return {}
    return {
        "skipped_links": [link.to_dict() for link in snapshot.skipped_links[:MAX_LISTED]],
        "skipped_link_count": len(snapshot.skipped_links),
    }


def update_package(
    ctx: SiteContext,
    package_id: str,
    progress: Progress | None = None,
    tmp: Path | None = None,
    outside_links: str | None = None,
) -> dict[str, Any]:
    """The old "Update Distribution Points": a new version only if the source changed.
    `outside_links` given changes the package's choice, kept once a version is published."""
    with ctx.db.session() as session:
        package = get_package(session, package_id)
        source, current = Path(package.source_path), package.current_version
        latest = _manifest_of(session, package_id, current)
        links_choice = outside_links or package.outside_links
    platform = latest.platform if latest is not None else DEFAULT_PLATFORM
    with ctx.library.writing():  # from the first blob stored until the version names it
        # the roots may have narrowed
        snapshot = ctx.library.snapshot(
            source, _source_guard(ctx), platform, progress, tmp, links_choice
        )
        candidate = Manifest(
            ctx.site_code,
            package_id,
            current + 1,
            tuple(snapshot.files),
            platform,
            tuple(snapshot.links),
        )
        if latest is not None and candidate.same_content(latest):
            if links_choice != package.outside_links:
                with ctx.db.session() as session:
                    get_package(session, package_id).outside_links = links_choice
            return {
                "package_id": package_id,
                "source_version": current,
                "changed": False,
                **_skipped(snapshot),
            }
        with ctx.db.session() as session:
            package = get_package(session, package_id)
            if package.current_version != current:
                raise Conflict(
                    f"package {package_id} was updated by someone else meanwhile",
                    "run the update again",
                )
            package.outside_links = links_choice
            _publish(ctx, session, package_id, current + 1, candidate, snapshot.new_bytes)
            apply_retention(session, package)
    ctx.distribution_changed()
    return {
        "package_id": package_id,
        "source_version": current + 1,
        "changed": True,
        **_skipped(snapshot),
    }


def apply_retention(session: Session, package: Package) -> tuple[list[int], list[int]]:
    """Prune the versions retention no longer keeps; (kept, pruned) source versions."""
    versions = session.scalars(
        select(PackageVersion)
        .where(PackageVersion.package_id == package.package_id)
        .order_by(PackageVersion.source_version.desc())
    ).all()
    newest = {v.source_version for v in versions[: package.keep_versions or DEFAULT_KEEP]}
    kept = newest | {package.current_version} | _used_by_applications(session, package)
    pruned: list[int] = []
    for version in versions:
        if version.source_version in kept:
            continue
        session.add(
            PrunedVersion(
                package_hash=version.package_hash,
                package_id=version.package_id,
                source_version=version.source_version,
                manifest=version.manifest,
            )
        )
        session.execute(delete(DPContent).where(DPContent.version_id == version.id))
        session.delete(version)
        pruned.append(version.source_version)
    session.flush()
    return sorted(v.source_version for v in versions if v.source_version in kept), sorted(pruned)


def _used_by_applications(session: Session, package: Package) -> set[int]:
    """Versions the current revision of some application installs."""
    return set(
        session.scalars(
            select(ApplicationRevision.source_version)
            .join(Application, Application.app_id == ApplicationRevision.app_id)
            .where(
                ApplicationRevision.package_id == package.package_id,
                ApplicationRevision.revision == Application.current_revision,
            )
        )
    )


def _manifest_of(session: Session, package_id: str, version: int) -> Manifest | None:
    row = session.scalar(
        select(PackageVersion).where(
            PackageVersion.package_id == package_id, PackageVersion.source_version == version
        )
    )
    return None if row is None else Manifest.from_dict(json.loads(row.manifest)["signed"])


def _publish(
    ctx: SiteContext,
    session: Session,
    package_id: str,
    version: int,
    manifest: Manifest,
    new_bytes: int,
) -> None:
    envelope = ctx.key.envelope(manifest.to_dict())
    package_hash = manifest.package_hash()
    ctx.library.write_manifest(package_hash, envelope)
    row = PackageVersion(
        package_id=package_id,
        source_version=version,
        package_hash=package_hash,
        manifest=json.dumps(envelope),
        file_count=len(manifest.files),
        total_size=manifest.total_size,
    )
    session.add(row)
    package = get_package(session, package_id)
    package.current_version = version
    package.updated = utcnow()
    session.flush()
    assignment.assign_version(session, row)
    trust_log.append(session, "publish", f"{package_id} {version}", {"package_hash": package_hash})
    bump_policy_serial(session)
    raise_status(
        session,
        2300,
        package_id,
        version,
        package_hash,
        len(manifest.files),
        manifest.total_size,
        new_bytes,
        package_id=package_id,
    )


def add_program(ctx: SiteContext, package_id: str, spec: ProgramSpec) -> dict[str, Any]:
    with ctx.db.session() as session:
        get_package(session, package_id)
        exists = session.scalar(
            select(Program).where(Program.package_id == package_id, Program.name == spec.name)
        )
        if exists is not None:
            raise Conflict(
                f"package {package_id} already has a program named {spec.name!r}",
                "choose another name, or remove the existing program first",
            )
        session.add(Program(package_id=package_id, name=spec.name, spec=spec.to_dict()))
        trust_log.append(session, "program.add", package_id, {"program": spec.to_dict()})
        bump_policy_serial(session)
    return {"package_id": package_id, "program": spec.to_dict()}


def distribute_package(ctx: SiteContext, package_id: str, dp_names: list[str]) -> dict[str, Any]:
    """Send a package to DPs (the REST API and the console both call this)."""
    with ctx.db.session() as session:
        get_package(session, package_id)
        points.distribute(session, package_id, dp_names)
    ctx.distribution_changed()
    return show_package(ctx, package_id)


def remove_package_from_dps(
    ctx: SiteContext, package_id: str, dp_names: list[str]
) -> dict[str, Any]:
    """Take a package off DPs; each deletes its copy once the grace period has passed."""
    with ctx.db.session() as session:
        get_package(session, package_id)
        for name in dp_names:
            points.remove_from_dp(session, package_id, name)
    ctx.distribution_changed()
    return show_package(ctx, package_id)


def redistribute(ctx: SiteContext, package_id: str, dp_name: str) -> dict[str, Any]:
    """SMS's "Redistribute": make sure the DP carries the newest version, then have it re-hash
    its copy and fetch again every blob that is missing or no longer matches."""
    with ctx.db.session() as session:
        get_package(session, package_id)
        points.distribute(session, package_id, [dp_name])
        validation.request_validation(session, dp_name, package_id)
    ctx.distribution_changed()
    return show_package(ctx, package_id)


def list_packages(
    ctx: SiteContext, search: str = "", limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    with ctx.db.session() as session:
        query = select(Package).order_by(Package.package_id).limit(limit).offset(offset)
        if search:
            query = query.where(
                Package.name.ilike(f"%{search}%") | Package.package_id.ilike(f"%{search}%")
            )
        return [_summary(p) for p in session.scalars(query)]


def _summary(package: Package) -> dict[str, Any]:
    return {
        "package_id": package.package_id,
        "name": package.name,
        "manufacturer": package.manufacturer,
        "version_label": package.version_label,
        "source_path": package.source_path,
        "source_version": package.current_version,
        "created": package.created.isoformat(),
        "updated": package.updated.isoformat(),
    }


def show_package(ctx: SiteContext, package_id: str) -> dict[str, Any]:
    with ctx.db.session() as session:
        package = get_package(session, package_id)
        versions = [
            {
                "source_version": v.source_version,
                "package_hash": v.package_hash,
                "file_count": v.file_count,
                "total_size": v.total_size,
                "created": v.created.isoformat(),
            }
            for v in package.versions
        ]
        by_version = {v.id: v.source_version for v in package.versions}
        dps = session.execute(
            select(DistributionPoint.name, DPContent)
            .join(DPContent, DPContent.dp_id == DistributionPoint.id)
            .where(DPContent.version_id.in_(list(by_version)))
            .order_by(DistributionPoint.name)
        ).all()
        current = max(package.versions, key=lambda v: v.source_version, default=None)
        signed = json.loads(current.manifest)["signed"] if current is not None else {}
        return {
            **_summary(package),
            "platform": signed.get("platform", DEFAULT_PLATFORM),
            "outside_links": package.outside_links,
            "versions": versions,
            "programs": [p.spec for p in package.programs],
            "distribution": [
                {
                    "dp": name,
                    "source_version": by_version[c.version_id],
                    "state": c.state,
                    "bytes_done": c.bytes_done,
                    "bytes_total": c.bytes_total,
                    "reason": c.reason,
                    "updated": c.updated.isoformat(),
                }
                for name, c in dps
            ],
        }
