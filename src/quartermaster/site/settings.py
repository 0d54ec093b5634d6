"""Site settings that change while the site runs, kept in the database.

Several site processes (behind a load balancer, on PostgreSQL) must agree on them, so they
are read from the database on use, never cached in a process or kept in config.json.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput
from quartermaster.site.models import SiteSetting, utcnow

# name → (type, default). A setting absent from the database has its default.
DEFAULTS: dict[str, tuple[type, Any]] = {
    "require_approval": (bool, False),  # new clients wait for `qm client approve`
    # A failed program's output kept with its status message (site/status/program_output.py)
    "program_output_message_bytes": (int, 64 * 1024),
    "program_output_total_bytes": (int, 256 * 1024 * 1024),
    # Download limits carried in policy: [{client | boundary | neither, rate, schedule}],
    # the first that matches a client applies (site/bandwidth.py, core/bandwidth.py).
    "bandwidth_rules": (list, []),
    # How long a pruned version's bytes stay in the library and on DPs (downloads under way).
    "content_grace_seconds": (int, 3600),
    # How often the site submits a garbage collection job (0: never; `qm package prune` still
    # does). Each site process counts from its own start; the database keeps it to one job.
    "gc_interval_seconds": (int, 3600),
    # Peer cache (site/distribution/peers.py): off by default; per-boundary overrides
    # [{"boundary": CIDR, "peer_cache": bool}], the most specific range that holds a client
    # wins; how long the one elected client of a boundary may fetch before another is.
    "peer_cache": (bool, False),
    "peer_cache_boundaries": (list, []),
    "peer_lease_seconds": (int, 120),
}
MAX_GRACE = 30 * 86400
MAX_GC_INTERVAL = 30 * 86400


def get_settings(session: Session) -> dict[str, Any]:
    values = {name: default for name, (_, default) in DEFAULTS.items()}
    for row in session.scalars(select(SiteSetting).where(SiteSetting.name.in_(DEFAULTS))):
        values[row.name] = row.value
    return values


def require_approval(session: Session) -> bool:
    return bool(get_settings(session)["require_approval"])


def update_settings(session: Session, changes: dict[str, Any], actor: str) -> dict[str, Any]:
    for name, value in changes.items():
        if name not in DEFAULTS:
            raise InvalidInput(
                f"there is no site setting {name!r}", f"settings: {', '.join(sorted(DEFAULTS))}"
            )
        kind, _ = DEFAULTS[name]
        if type(value) is not kind:
            raise InvalidInput(f"setting {name!r} takes a {kind.__name__}")
        if name == "peer_lease_seconds" and not 5 <= cast(int, value) <= 3600:
            raise InvalidInput("peer_lease_seconds is 5 to 3600")
        if name == "content_grace_seconds" and not 0 <= cast(int, value) <= MAX_GRACE:
            raise InvalidInput(f"content_grace_seconds is 0 to {MAX_GRACE} (30 days)")
        if name == "gc_interval_seconds" and not 0 <= cast(int, value) <= MAX_GC_INTERVAL:
            raise InvalidInput(f"gc_interval_seconds is 0 (never) to {MAX_GC_INTERVAL} (30 days)")
        row = session.get(SiteSetting, name)
        if row is None:
            session.add(SiteSetting(name=name, value=value, updated_by=actor[:100]))
        else:
            row.value, row.updated, row.updated_by = value, utcnow(), actor[:100]
    session.flush()
    return get_settings(session)
