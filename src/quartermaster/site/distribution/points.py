"""The DP registry: add, list, retire and re-enroll DPs; which packages each one carries."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.hashing import token_hash
from quartermaster.site.distribution.assignment import assign_latest
from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    Package,
    PackageDP,
    PackageVersion,
    utcnow,
)

EMBEDDED_DP = "site"


def check_boundary(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise InvalidInput(
            f"boundary {cidr!r} is not an IP range", "use CIDR, e.g. 10.1.0.0/16"
        ) from None


def check_dp_url(url: str) -> str:
    """A DP's URL is where clients and other DPs fetch from: plain http(s) to a host, nothing
    a browser or a fetcher would treat otherwise (javascript:, credentials, a fragment)."""
    try:
        parts = urlsplit(url)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and "@" not in parts.netloc
            and not parts.query
            and not parts.fragment
            and url.isprintable()
            and " " not in url
        )
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(
            f"DP URL {url!r} is not an http or https URL of a host",
            "e.g. http://dp1.example:8441",
        )
    return url.rstrip("/")


def get_dp(session: Session, name: str) -> DistributionPoint:
    dp = session.scalar(select(DistributionPoint).where(DistributionPoint.name == name))
    if dp is None:
        raise NotFound(f"distribution point {name!r} does not exist", "list them with `qm dp list`")
    return dp


def dp_by_id(session: Session, dp_id: int) -> DistributionPoint:
    """The DP an authenticated request came from (its row may be gone since)."""
    dp = session.get(DistributionPoint, dp_id)
    if dp is None:
        raise NotFound(f"DP {dp_id} is no longer registered", "enroll the DP again")
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
    url = check_dp_url(url)
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
        assign_latest(session, dp.id, package_id)
    return token


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
        assign_latest(session, dp.id, package_id)


def remove_from_dp(session: Session, package_id: str, dp_name: str) -> None:
    dp = get_dp(session, dp_name)
    session.execute(
        delete(PackageDP).where(PackageDP.package_id == package_id, PackageDP.dp_id == dp.id)
    )
    version_ids = select(PackageVersion.id).where(PackageVersion.package_id == package_id)
    session.execute(
        delete(DPContent).where(DPContent.dp_id == dp.id, DPContent.version_id.in_(version_ids))
    )


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
                "problem": dp.problem,
                "content": dp_content(session, dp),
            }
        )
    return result


def embedded_dp_status(session: Session) -> dict[str, Any] | None:
    """The site's own DP as `qm site status` shows it; None for a site without one."""
    dp = session.scalar(select(DistributionPoint).where(DistributionPoint.embedded.is_(True)))
    if dp is None:
        return None
    return {
        "name": dp.name,
        "url": dp.url,
        "enrolled": dp.credential_hash is not None,
        "last_contact": dp.last_contact.isoformat() if dp.last_contact else None,
        "problem": dp.problem,
    }


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
