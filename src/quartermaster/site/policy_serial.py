"""The policy serial: one counter that every change to some client's policy bumps.

Clients' policy ETags follow it (site/deployments/policy.py), and changes in every room can
alter a policy (a new package version, a key rotation, a membership change, a deployment),
so it lives below them all.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from quartermaster.site.db import next_counter

SERIAL = "policy_serial"


def bump_policy_serial(session: Session) -> int:
    """Call in every transaction that can change some client's policy: the ETag follows it."""
    return next_counter(session, SERIAL)
