"""Client policy: which deployments a client has, signed, with a cheap ETag for unchanged polls.

The ETag is the global policy serial plus the day of issue, so an unchanged poll costs one
counter read, and every client still receives a freshly signed (unexpired) policy daily.
Any change that can alter some client's policy bumps the serial.

A deployment is in a client's policy when the client is a current member of its collection,
the deployment is not cancelled, and, in a phased rollout, the client's phase is released.
A paused deployment stays listed with state "paused" so clients hold off. Each entry carries
the maintenance windows of every collection the client is in (a client may run a mandatory
program in any of them) and whether the deployment may override them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.site.context import SiteContext
from quartermaster.site.db import next_counter, read_counter
from quartermaster.site.models import (
    Client,
    CollectionMember,
    Deployment,
    MaintenanceWindow,
    Package,
    PackageVersion,
    Program,
)
from quartermaster.site.phases import PhasePlan, assign_phase

SERIAL = "policy_serial"


def bump_policy_serial(session: Session) -> int:
    """Call in every transaction that can change some client's policy: the ETag follows it."""
    return next_counter(session, SERIAL)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def policy_etag(session: Session, now: datetime) -> str:
    return f'"{read_counter(session, SERIAL)}.{now.date().isoformat()}"'


def build_policy(ctx: SiteContext, session: Session, client: Client,
                 now: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(Deployment, PackageVersion, Program, Package.name)
        .join(CollectionMember, CollectionMember.collection_id == Deployment.collection_id)
        .join(Package, Package.package_id == Deployment.package_id)
        .join(PackageVersion, (PackageVersion.package_id == Deployment.package_id)
              & (PackageVersion.source_version == Package.current_version))
        .join(Program, (Program.package_id == Deployment.package_id)
              & (Program.name == Deployment.program_name))
        .where(CollectionMember.client_id == client.client_id,
               Deployment.state != "cancelled")
        .order_by(Deployment.deployment_id)).all()
    windows = client_windows(session, client.client_id)
    deployments = [{
        "deployment_id": d.deployment_id, "package_id": d.package_id, "package_name": name,
        "source_version": v.source_version, "package_hash": v.package_hash, "program": p.spec,
        "available": _iso(d.available), "deadline": _iso(d.deadline), "expires": _iso(d.expires),
        "rerun": d.rerun, "state": d.state, "maintenance_windows": windows,
        "override_maintenance": d.override_maintenance,
    } for d, v, p, name in rows if phase_released(d, client.client_id)]
    issued = now.replace(microsecond=0)
    return ctx.key.envelope({
        "type": "policy", "client_id": client.client_id, "site_code": ctx.site_code,
        "serial": read_counter(session, SERIAL), "issued": _iso(issued),
        "expires": _iso(issued + timedelta(days=ctx.config.policy_lifetime_days)),
        "poll_interval": ctx.config.poll_interval, "deployments": deployments,
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],  # rotation: site/keys.py
    })


def client_windows(session: Session, client_id: str) -> list[str]:
    """Normalized maintenance windows of every collection the client is a member of."""
    texts = session.scalars(select(MaintenanceWindow.text).join(
        CollectionMember, CollectionMember.collection_id == MaintenanceWindow.collection_id)
        .where(CollectionMember.client_id == client_id).distinct())
    return sorted(texts)


def phase_released(deployment: Deployment, client_id: str) -> bool:
    """Whether the client's phase of a phased rollout is released (always, if not phased)."""
    if deployment.phase_plan is None:
        return True
    plan = PhasePlan.from_dict(deployment.phase_plan)
    released = int((deployment.rollout or {}).get("released", 1))
    return assign_phase(deployment.deployment_id, client_id, plan) <= released
