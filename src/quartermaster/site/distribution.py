"""Distribution points as ordinary records: what each carries, its state, and where clients go.

A DP's copy of a package version moves pending → distributing → installed | failed, and to
validation_failed when a client or a revalidation found bad bytes. Only `installed` copies
are ever offered to clients.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from quartermaster.core.hashing import token_hash
from quartermaster.site.context import SiteContext
from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    Package,
    PackageDP,
    PackageVersion,
    utcnow,
)
from quartermaster.site.serial_cache import SerialCache
from quartermaster.site.site_status import raise_status

EMBEDDED_DP = "site"
VALIDATE_INTERVAL = 86400
_STATES = {"distributing", "installed", "failed"}


def check_boundary(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise InvalidInput(
            f"boundary {cidr!r} is not an IP range", "use CIDR, e.g. 10.1.0.0/16"
        ) from None


def get_dp(session: Session, name: str) -> DistributionPoint:
    dp = session.scalar(select(DistributionPoint).where(DistributionPoint.name == name))
    if dp is None:
        raise NotFound(f"distribution point {name!r} does not exist", "list them with `qm dp list`")
    return dp


def add_dp(
    session: Session,
    name: str,
    url: str,
    boundaries: list[str],
    fallback: bool,
    embedded: bool = False,
) -> str:
    """Register a DP, make it carry every package, and return its one-time enrollment token."""
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput(f"DP name {name!r} is not valid", "use letters, digits, '-', '_' or '.'")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"DP URL {url!r} is not http(s)", "e.g. http://dp1.example:8441")
    if session.scalar(select(DistributionPoint).where(DistributionPoint.name == name)):
        raise Conflict(f"distribution point {name!r} already exists", "choose another name")
    token = "qme_" + secrets.token_urlsafe(24)
    dp = DistributionPoint(
        name=name,
        url=url.rstrip("/"),
        boundaries=[check_boundary(b) for b in boundaries],
        fallback=fallback,
        embedded=embedded,
        enrollment_token_hash=token_hash(token),
    )
    session.add(dp)
    session.flush()
    for package_id in session.scalars(select(Package.package_id)):
        session.add(PackageDP(package_id=package_id, dp_id=dp.id))
        _assign_latest(session, dp.id, package_id)
    return token


def carry_on_all_dps(session: Session, package_id: str) -> None:
    for dp_id in session.scalars(
        select(DistributionPoint.id).where(DistributionPoint.state == "active")
    ):
        session.add(PackageDP(package_id=package_id, dp_id=dp_id))
    session.flush()


def _assign_latest(session: Session, dp_id: int, package_id: str) -> None:
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


def distribute(session: Session, package_id: str, dp_names: list[str]) -> None:
    for name in dp_names:
        dp = get_dp(session, name)
        if dp.state != "active":
            raise Conflict(
                f"distribution point {name!r} is retired",
                f"enroll it again first: `qm dp reenroll {name}`",
            )
        if session.get(PackageDP, (package_id, dp.id)) is None:
            session.add(PackageDP(package_id=package_id, dp_id=dp.id))
            session.flush()
        _assign_latest(session, dp.id, package_id)


def remove_from_dp(session: Session, package_id: str, dp_name: str) -> None:
    dp = get_dp(session, dp_name)
    session.execute(
        delete(PackageDP).where(PackageDP.package_id == package_id, PackageDP.dp_id == dp.id)
    )
    version_ids = select(PackageVersion.id).where(PackageVersion.package_id == package_id)
    session.execute(
        delete(DPContent).where(DPContent.dp_id == dp.id, DPContent.version_id.in_(version_ids))
    )


# --- the DP's side of the protocol ---------------------------------------------------------


def enroll(
    session: Session, enrollment_token: str, url: str | None
) -> tuple[DistributionPoint, str]:
    dp = session.scalar(
        select(DistributionPoint).where(
            DistributionPoint.enrollment_token_hash == token_hash(enrollment_token)
        )
    )
    if dp is None or dp.state != "active":
        raise Unauthorized(
            "the enrollment token is not valid or was already used",
            "ask the administrator for a new one: `qm dp add` or `qm dp reenroll`",
        )
    credential = "qmd_" + secrets.token_urlsafe(32)
    dp.enrollment_token_hash = None
    dp.credential_hash = token_hash(credential)
    dp.last_contact = utcnow()
    if url:
        dp.url = url.rstrip("/")
    return dp, credential


def authenticate_dp(session: Session, credential: str) -> DistributionPoint:
    dp = session.scalar(
        select(DistributionPoint).where(DistributionPoint.credential_hash == token_hash(credential))
    )
    if dp is None or dp.state != "active":
        raise Unauthorized(
            "unknown or retired distribution point credential",
            "enroll the DP again with a new token",
        )
    return dp


def retire_dp(session: Session, name: str) -> DistributionPoint:
    """Take a DP out of service: its credential and any enrollment token stop working, and
    clients are no longer sent to it. Its copies count as unverified from now on."""
    dp = _not_embedded(get_dp(session, name), "retire")
    dp.state = "retired"
    dp.credential_hash = None
    dp.enrollment_token_hash = None
    _unverify_content(session, dp)
    return dp


def reenroll_dp(session: Session, name: str) -> str:
    """A new one-time enrollment token for a DP (retired, or with a lost credential); the
    old credential stops working now, and its copies wait until it has re-hashed them."""
    dp = _not_embedded(get_dp(session, name), "re-enroll")
    token = "qme_" + secrets.token_urlsafe(24)
    dp.state = "active"
    dp.credential_hash = None
    dp.enrollment_token_hash = token_hash(token)
    _unverify_content(session, dp)
    return token


def _not_embedded(dp: DistributionPoint, what: str) -> DistributionPoint:
    if dp.embedded:
        raise Conflict(
            f"the site's own distribution point {dp.name!r} cannot be told to {what}",
            "run the site with `qm site serve --no-dp` to stop serving content",
        )
    return dp


def _unverify_content(session: Session, dp: DistributionPoint) -> None:
    """What a DP held while out of our hands is offered again only after a full re-hash."""
    for content in session.scalars(select(DPContent).where(DPContent.dp_id == dp.id)):
        content.state = "pending"
        content.validate_requested = True
        content.updated = utcnow()


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
        "sources": [*others, f"{ctx.content_url}/library"],
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
    dp = get_dp(session, dp_name)
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


_DPS = cast(Table, DistributionPoint.__table__)
_COPIES = cast(Table, DPContent.__table__)
_VERSIONS = cast(Table, PackageVersion.__table__)
# Built once (every client of a wave asks): active DPs with an installed copy of a version.
_INSTALLED = (
    select(_DPS.c.name, _DPS.c.url, _DPS.c.boundaries, _DPS.c.fallback)
    .join(_COPIES, _COPIES.c.dp_id == _DPS.c.id)
    .join(_VERSIONS, _VERSIONS.c.id == _COPIES.c.version_id)
    .where(
        _VERSIONS.c.package_hash == bindparam("package_hash"),
        _COPIES.c.state == "installed",
        _DPS.c.state == "active",
    )
    .order_by(_DPS.c.name)
)


def content_locations(
    session: Session, package_hash: str, client_ips: list[str]
) -> list[dict[str, str]]:
    """DPs with an installed copy: those whose boundary holds the client first, then fallbacks."""
    rows = session.connection().execute(_INSTALLED, {"package_hash": package_hash}).all()
    addresses = [ipaddress.ip_address(ip) for ip in client_ips if _is_ip(ip)]
    near, fallback = [], []
    for name, url, boundaries, is_fallback in rows:
        networks = [_network(b) for b in boundaries]
        if any(a in n for a in addresses for n in networks if a.version == n.version):
            near.append({"dp": name, "url": url, "kind": "boundary"})
        elif is_fallback:
            fallback.append({"dp": name, "url": url, "kind": "fallback"})
    return near + fallback


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def list_dps(session: Session) -> list[dict[str, Any]]:
    result = []
    for dp in session.scalars(select(DistributionPoint).order_by(DistributionPoint.name)):
        result.append(
            {
                "name": dp.name,
                "url": dp.url,
                "boundaries": dp.boundaries,
                "fallback": dp.fallback,
                "embedded": dp.embedded,
                "state": dp.state,
                "enrolled": dp.credential_hash is not None,
                "last_contact": dp.last_contact.isoformat() if dp.last_contact else None,
                "free_bytes": dp.free_bytes,
                "used_bytes": dp.used_bytes,
                "content": dp_content(session, dp),
            }
        )
    return result


def dp_content(session: Session, dp: DistributionPoint) -> list[dict[str, Any]]:
    rows = session.execute(
        select(DPContent, PackageVersion)
        .join(PackageVersion, PackageVersion.id == DPContent.version_id)
        .where(DPContent.dp_id == dp.id)
        .order_by(PackageVersion.package_id, PackageVersion.source_version)
    ).all()
    return [
        {
            "package_id": v.package_id,
            "source_version": v.source_version,
            "package_hash": v.package_hash,
            "state": c.state,
            "bytes_done": c.bytes_done,
            "bytes_total": c.bytes_total,
            "reason": c.reason,
            "last_validated": c.last_validated.isoformat() if c.last_validated else None,
        }
        for c, v in rows
    ]


_MANIFEST = select(_VERSIONS.c.manifest).where(
    _VERSIONS.c.package_hash == bindparam("package_hash")
)


def manifest_envelope(session: Session, package_hash: str) -> dict[str, Any]:
    text = session.connection().execute(_MANIFEST, {"package_hash": package_hash}).scalar()
    if text is None:
        raise NotFound(f"no package version has hash {package_hash}", "check the package hash")
    envelope: dict[str, Any] = json.loads(text)
    return envelope


# A version's manifest never changes, except its signatures when the site's keys rotate,
# and re-signing bumps the policy serial in the same transaction.
_MANIFESTS: SerialCache[str, bytes] = SerialCache(1024)


def manifest_bytes(session: Session, package_hash: str, serial: int) -> bytes:
    """The signed manifest envelope as canonical JSON; `serial` is the policy serial read
    earlier in this transaction."""
    return _MANIFESTS.get(
        serial, package_hash, lambda: canonical_json(manifest_envelope(session, package_hash))
    )
