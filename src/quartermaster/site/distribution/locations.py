"""Content locations: the DPs a client should download from, nearest first by boundary."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from quartermaster.site.models import (
    DistributionPoint,
    DPContent,
    PackageVersion,
)

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
