"""Retention and garbage collection: which versions a package keeps, and freeing the rest.

A package keeps its newest N versions (`keep_versions`, default 3) and every version still in
use: its current version and each version the current revision of an application installs.
`prune` moves every other version to `pruned_versions`: DPs stop being assigned it, clients
are no longer sent to it.

Its bytes are not deleted at once. A client or DP that was given the version before the
prune may be downloading it now, so its blobs stay in the library, and DPs keep them, for
the grace period (`content_grace_seconds`, default one hour) after the prune. Then a sweep
of the library deletes every blob and manifest no live or in-grace version names, and each
DP deletes its copy at its next poll (the assignment list names the in-grace versions it
must still keep).

A snapshot that runs while the library is swept cannot lose a blob: it holds the library's
lock shared from before it stores (or finds) its first blob until its version is committed,
and the sweep takes that lock exclusively, then reads which blobs are used. So the sweep
sees either no trace of the snapshot or its committed version (docs/operations.md).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from quartermaster.core.errors import InvalidInput
from quartermaster.core.manifest import Manifest
from quartermaster.site.content.packages import DEFAULT_KEEP, apply_retention, get_package
from quartermaster.site.content_library import Sweep
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution.assignment import in_grace
from quartermaster.site.models import PackageVersion

MAX_KEEP = 1000


def prune_package(ctx: SiteContext, package_id: str, keep: int | None = None) -> dict[str, Any]:
    """Apply the package's retention (setting it to `keep` first, if given), then sweep.
    Runs as a `gc` job (site/jobs/kinds.py)."""
    check_keep(keep)
    with ctx.db.session() as session:
        package = get_package(session, package_id)
        if keep is not None:
            package.keep_versions = keep
        kept, pruned = apply_retention(session, package)
        keep_versions = package.keep_versions or DEFAULT_KEEP
    if pruned:
        ctx.distribution_changed()
    swept = collect_garbage(ctx)
    return {
        "package_id": package_id,
        "keep_versions": keep_versions,
        "kept": kept,
        "pruned": pruned,
        "library": swept.to_dict(),
    }


def check_keep(keep: int | None) -> None:
    if keep is not None and not 1 <= keep <= MAX_KEEP:
        raise InvalidInput(f"--keep takes 1 to {MAX_KEEP} versions", "e.g. --keep 3")


def collect_garbage(ctx: SiteContext) -> Sweep:
    """Delete from the library what no live or in-grace version uses."""
    with ctx.library.sweeping():
        with ctx.db.session() as session:
            live = select(PackageVersion.package_hash, PackageVersion.manifest)
            used = [(h, m) for h, m in session.execute(live)]
            used += [(p.package_hash, p.manifest) for p in in_grace(session)]
        blobs: set[str] = set()
        for _, text in used:
            blobs.update(Manifest.from_dict(json.loads(text)["signed"]).blobs())
        return ctx.library.sweep(blobs, {package_hash for package_hash, _ in used})
