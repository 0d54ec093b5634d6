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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from quartermaster.core.program import ProgramSpec
from quartermaster.site.applications.graph import closure, current_edges, supersedes_of
from quartermaster.site.bandwidth import limit_for
from quartermaster.site.collection_rules import Rule, client_facts, parse_rule
from quartermaster.site.context import SiteContext
from quartermaster.site.db import read_counter
from quartermaster.site.deployments.approvals import approvals_for
from quartermaster.site.deployments.phases import PhasePlan, assign_phase
from quartermaster.site.identity import trust_log
from quartermaster.site.models import (
    Application,
    ApplicationRevision,
    Client,
    Collection,
    CollectionMember,
    Deployment,
    MaintenanceWindow,
    Package,
    PackageVersion,
    Program,
)
from quartermaster.site.policy_serial import SERIAL
from quartermaster.site.serial_cache import SerialCache


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def etag_of(serial: int, now: datetime) -> str:
    """The policy serial and the day of issue (a client gets a freshly signed policy daily)."""
    return f'"{serial}.{now.date().isoformat()}"'


def build_policy(
    ctx: SiteContext,
    session: Session,
    client: Client | str,
    now: datetime,
    serial: int | None = None,
) -> dict[str, Any]:
    """The client's signed policy. `serial` is the policy serial the caller read first in
    this transaction (read here when not given)."""
    client_id = client if isinstance(client, str) else client.client_id
    if serial is None:
        serial = read_counter(session, SERIAL)
    memberships = tuple(
        sorted(session.connection().execute(_MEMBERSHIPS, {"client_id": client_id}).scalars())
    )
    entries, windows, applications, approvals = _CACHE.get(
        ctx.db.url, serial, memberships, lambda: _load_entries(session, memberships)
    )
    deployments = [
        {**entry, "maintenance_windows": windows}
        for entry, phased in entries
        if phased is None or _released(phased, entry["deployment_id"], client_id)
    ]
    _mark_unmet_requirements(session, client, deployments, applications)
    issued = now.replace(microsecond=0)
    bandwidth = limit_for(session, client)
    trust: dict[str, Any] = {"log_head": trust_log.head(session), "approvals": approvals}
    if root_version := ctx.roots.latest_version():
        trust["root_version"] = root_version
    return ctx.key.envelope(
        {
            **trust,
            **({"bandwidth": bandwidth} if bandwidth is not None else {}),
            "type": "policy",
            "client_id": client_id,
            "site_code": ctx.site_code,
            "serial": serial,
            "issued": _iso(issued),
            "expires": _iso(issued + timedelta(days=ctx.config.policy_lifetime_days)),
            "poll_interval": ctx.config.poll_interval,
            "deployments": deployments,
            "applications": applications,
            # after a rotation, the keys of site/identity/keys.py
            "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
        }
    )


def _mark_unmet_requirements(
    session: Session,
    client: Client | str,
    deployments: list[dict[str, Any]],
    applications: dict[str, dict[str, Any]],
) -> None:
    """An application's `require` rule is decided here, against the facts the client last
    reported (inventory at every agent run): the client needs no rule compiler, and an unmet
    rule reaches it as a reason it reports with 3000 before downloading anything."""
    required = [
        (entry, _rule(applications[entry["application"]["app_id"]]["require"]))
        for entry in deployments
        if entry.get("application") and applications[entry["application"]["app_id"]].get("require")
    ]
    if not required:
        return
    record = session.get(Client, client) if isinstance(client, str) else client
    facts = client_facts(record) if record is not None else {}
    for entry, rule in required:
        if not rule.matches(facts):
            entry["requirements_unmet"] = rule.explain(facts)


@lru_cache(maxsize=256)
def _rule(text: str) -> Rule:
    return parse_rule(text)


_MEMBERS = cast(Table, CollectionMember.__table__)
_MEMBERSHIPS = select(_MEMBERS.c.collection_id).where(
    _MEMBERS.c.client_id == bindparam("client_id")
)


@dataclass(frozen=True)
class _Phased:
    plan: PhasePlan
    released: int


_Entries = tuple[
    tuple[tuple[dict[str, Any], _Phased | None], ...],
    list[str],
    dict[str, dict[str, Any]],
    list[dict[str, Any]],
]


# The policy entries of a set of collections, per policy serial, in this process. Every
# client in the same collections gets the same deployments and windows (only phase
# membership differs, decided per client from the cached plan), so a wave of 200 answers
# costs one membership query each instead of the joins.
_CACHE: SerialCache[tuple[int, ...], _Entries] = SerialCache(256)


def _load_entries(session: Session, memberships: tuple[int, ...]) -> _Entries:
    if not memberships:
        return (), [], {}, []
    names = dict(
        session.execute(
            select(Collection.id, Collection.name).where(Collection.id.in_(memberships))
        )
        .tuples()
        .all()
    )
    rows = session.execute(
        select(
            Deployment,
            PackageVersion.source_version,
            PackageVersion.package_hash,
            Program.spec,
            Package.name,
        )
        .join(Package, Package.package_id == Deployment.package_id)
        .join(
            PackageVersion,
            (PackageVersion.package_id == Deployment.package_id)
            & (PackageVersion.source_version == Package.current_version),
        )
        .join(
            Program,
            (Program.package_id == Deployment.package_id)
            & (Program.name == Deployment.program_name),
        )
        .where(Deployment.collection_id.in_(memberships), Deployment.state != "cancelled")
        .order_by(Deployment.deployment_id)
    ).all()
    windows = sorted(
        set(
            session.scalars(
                select(MaintenanceWindow.text).where(
                    MaintenanceWindow.collection_id.in_(memberships)
                )
            )
        )
    )
    entries = [
        (
            _entry(d, d.package_id, name, source_version, package_hash, spec, names),
            _phased(d),
        )
        for d, source_version, package_hash, spec, name in rows
    ]
    deployed = session.scalars(
        select(Deployment).where(
            Deployment.collection_id.in_(memberships),
            Deployment.state != "cancelled",
            Deployment.app_id.is_not(None),
        )
    ).all()
    applications = application_entries(session, {d.app_id for d in deployed if d.app_id})
    for d in deployed:
        app = applications[str(d.app_id)]
        program = app["uninstall"] if d.purpose == "uninstall" else app["install"]
        entry = _entry(
            d,
            app["package_id"],
            app["package_name"],
            app["source_version"],
            app["package_hash"],
            program or app["install"],
            names,
        )
        entry["application"] = {"app_id": d.app_id, "purpose": d.purpose}
        entries.append((entry, _phased(d)))
    entries.sort(key=lambda pair: pair[0]["deployment_id"])
    hashes = {e["package_hash"] for e, _ in entries} | {
        a["package_hash"] for a in applications.values()
    }
    return tuple(entries), windows, applications, approvals_for(session, hashes)


_PROGRAM_DEFAULTS = ProgramSpec("x", "x").to_dict()


def compact_program(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """An application's program without the fields that have their default value: policy
    with 50 applications stays small (the client fills the defaults back in)."""
    if spec is None:
        return None
    return {
        k: v for k, v in spec.items() if k in ("name", "command") or _PROGRAM_DEFAULTS.get(k) != v
    }


def _phased(d: Deployment) -> _Phased | None:
    if d.phase_plan is None:
        return None
    return _Phased(PhasePlan.from_dict(d.phase_plan), int((d.rollout or {}).get("released", 1)))


def _entry(
    d: Deployment,
    package_id: str | None,
    name: str,
    source_version: int,
    package_hash: str,
    spec: dict[str, Any],
    collections: dict[int, str],
) -> dict[str, Any]:
    return {
        "deployment_id": d.deployment_id,
        "collection": collections.get(d.collection_id, ""),  # approvals name collections
        "package_id": package_id,
        "package_name": name,
        "source_version": source_version,
        "package_hash": package_hash,
        "program": spec,
        "available": _iso(d.available),
        "deadline": _iso(d.deadline),
        "expires": _iso(d.expires),
        "rerun": d.rerun,
        "state": d.state,
        "override_maintenance": d.override_maintenance,
    }


def application_entries(session: Session, roots: set[str]) -> dict[str, dict[str, Any]]:
    """The current revision of every application the roots need (dependencies and the
    applications they supersede, transitively), as policy carries it: one query each for
    the edges and the revisions, whatever their number."""
    if not roots:
        return {}
    edges = current_edges(session)
    wanted = closure(edges, roots)
    rows = session.execute(
        select(Application, ApplicationRevision, PackageVersion.package_hash, Package.name)
        .join(
            ApplicationRevision,
            (ApplicationRevision.app_id == Application.app_id)
            & (ApplicationRevision.revision == Application.current_revision),
        )
        .join(
            PackageVersion,
            (PackageVersion.package_id == ApplicationRevision.package_id)
            & (PackageVersion.source_version == ApplicationRevision.source_version),
        )
        .join(Package, Package.package_id == ApplicationRevision.package_id)
        .where(Application.app_id.in_(wanted))
    ).all()
    found = {}
    for application, revision, package_hash, package_name in rows:
        links = edges.get(application.app_id, [])
        found[application.app_id] = {
            "app_id": application.app_id,
            "name": application.name,
            "revision": revision.revision,
            "package_id": revision.package_id,
            "package_name": package_name,
            "source_version": revision.source_version,
            "package_hash": package_hash,
            "install": compact_program(revision.spec["install"]),
            "uninstall": compact_program(revision.spec["uninstall"]),
            "detection": revision.spec["detection"],
            "run_as": revision.spec["run_as"],
            "reevaluate": revision.spec["reevaluate"],
            **({"require": revision.spec["require"]} if revision.spec.get("require") else {}),
            "depends": [other for kind, other in links if kind == "depends"],
            "supersedes": supersedes_of(session, revision.id),
        }
    return found


def _released(phased: _Phased, deployment_id: str, client_id: str) -> bool:
    return assign_phase(deployment_id, client_id, phased.plan) <= phased.released
