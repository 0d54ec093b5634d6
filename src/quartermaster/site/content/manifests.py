"""Signed manifests of package versions, served by hash to DPs and clients."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import NotFound
from quartermaster.site.models import PackageVersion
from quartermaster.site.serial_cache import SerialCache

_VERSIONS = cast(Table, PackageVersion.__table__)
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


def manifest_bytes(session: Session, package_hash: str, serial: int, database: str) -> bytes:
    """The signed manifest envelope as canonical JSON; `serial` is the policy serial read
    earlier in this transaction from `database` (its URL)."""
    return _MANIFESTS.get(
        database,
        serial,
        package_hash,
        lambda: canonical_json(manifest_envelope(session, package_hash)),
    )
