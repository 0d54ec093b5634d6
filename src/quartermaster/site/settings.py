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
}
MAX_GRACE = 30 * 86400


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
        if name == "content_grace_seconds" and not 0 <= cast(int, value) <= MAX_GRACE:
            raise InvalidInput(f"content_grace_seconds is 0 to {MAX_GRACE} (30 days)")
        row = session.get(SiteSetting, name)
        if row is None:
            session.add(SiteSetting(name=name, value=value, updated_by=actor[:100]))
        else:
            row.value, row.updated, row.updated_by = value, utcnow(), actor[:100]
    session.flush()
    return get_settings(session)
