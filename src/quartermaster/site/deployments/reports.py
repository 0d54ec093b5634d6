"""Read-only roll-ups across objects: the site at a glance, outcomes over time, distribution
progress, DP health, and what one client is part of.

Faces (the web console first) show these; each query is bounded and served by an index, so
a page stays fast with 100,000 clients and 1,000,000 status messages.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quartermaster.core.status_catalog import CATALOG, ClientState
from quartermaster.site.models import (
    Client,
    Collection,
    CollectionMember,
    Deployment,
    DeploymentClient,
    DistributionPoint,
    DPContent,
    Package,
    StatusMessageRow,
    utcnow,
)
from quartermaster.site.status.messages import message_dict

#: A client that asked for policy within this time is active (SMS's heartbeat window).
ACTIVE_WINDOW = timedelta(days=7)
#: A DP silent for longer than this (ten default polls) is not healthy.
DP_SILENCE = timedelta(minutes=10)
#: Site status messages of DP validation: mismatch reported, validated, bad blobs found.
VALIDATION_MESSAGES = (2360, 2361, 2362)

SUCCESS_MESSAGES = tuple(sorted(m.id for m in CATALOG.values() if m.state is ClientState.SUCCEEDED))
FAILURE_MESSAGES = tuple(sorted(m.id for m in CATALOG.values() if m.state is ClientState.FAILED))


def site_counts(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Clients (active / inactive / unapproved), packages, DPs and deployments by state."""
    now = now or utcnow()
    by_approval = dict(
        session.execute(select(Client.approval, func.count()).group_by(Client.approval)).all()
    )
    approved = by_approval.get("approved", 0)
    active = (
        session.scalar(
            select(func.count())
            .select_from(Client)
            .where(Client.last_policy_request >= now - ACTIVE_WINDOW, Client.approval == "approved")
        )
        or 0
    )
    deployments = dict(
        session.execute(select(Deployment.state, func.count()).group_by(Deployment.state)).all()
    )
    return {
        "clients": {
            "active": active,
            "inactive": approved - active,
            "unapproved": sum(by_approval.values()) - approved,
            "total": sum(by_approval.values()),
        },
        "packages": session.scalar(select(func.count()).select_from(Package)) or 0,
        "deployments": {
            "active": deployments.get("active", 0),
            "paused": deployments.get("paused", 0),
            "cancelled": deployments.get("cancelled", 0),
            "total": sum(deployments.values()),
        },
    }


def dp_health(dp: dict[str, Any], now: datetime | None = None) -> tuple[str, str]:
    """("ok" | "warning" | "error", why) for a DP as `distribution.list_dps` describes it."""
    now = now or utcnow()
    if dp["state"] != "active":
        return "warning", "retired"
    if not dp["enrolled"]:
        return "warning", "waiting for enrollment"
    last = datetime.fromisoformat(dp["last_contact"]) if dp["last_contact"] else None
    if last is None or now - last > DP_SILENCE:
        return "error", "no contact since " + (
            last.strftime("%Y-%m-%d %H:%M UTC") if last else "enrollment"
        )
    bad = [c for c in dp["content"] if c["state"] in ("failed", "validation_failed")]
    if bad:
        return "error", f"{len(bad)} package version(s) failed or failed validation"
    busy = [c for c in dp["content"] if c["state"] in ("pending", "distributing")]
    if busy:
        return "ok", f"distributing {len(busy)} package version(s)"
    return "ok", "healthy"


def distribution_progress(session: Session) -> list[dict[str, Any]]:
    """Per DP, how many package versions are in each state (pending ... installed)."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for name, state, count in session.execute(
        select(DistributionPoint.name, DPContent.state, func.count())
        .join(DPContent, DPContent.dp_id == DistributionPoint.id)
        .where(DistributionPoint.state == "active")
        .group_by(DistributionPoint.name, DPContent.state)
    ):
        counts[name][state] = count
    names = session.scalars(
        select(DistributionPoint.name)
        .where(DistributionPoint.state == "active")
        .order_by(DistributionPoint.name)
    )
    return [{"dp": name, "states": counts.get(name, {})} for name in names]


def outcome_history(
    session: Session, days: int = 14, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Deployment outcomes per UTC day (program succeeded / failed messages), oldest first.

    Two range counts per day on the (message ID, time) index: cheaper than grouping every
    message by a computed day, and the same SQL on SQLite and PostgreSQL."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    history = []
    for offset in range(days):
        start = first + timedelta(days=offset)
        counts = {}
        for key, ids in (("succeeded", SUCCESS_MESSAGES), ("failed", FAILURE_MESSAGES)):
            counts[key] = (
                session.scalar(
                    select(func.count())
                    .select_from(StatusMessageRow)
                    .where(
                        StatusMessageRow.message_id.in_(ids),
                        StatusMessageRow.time >= start,
                        StatusMessageRow.time < start + timedelta(days=1),
                    )
                )
                or 0
            )
        history.append({"day": start.strftime("%Y-%m-%d"), **counts})
    return history


def deployment_counts(session: Session, deployment_ids: list[str]) -> dict[str, dict[str, int]]:
    """Each deployment's clients per state, for a page of deployments (one query)."""
    counts: dict[str, dict[str, int]] = {
        d: {s.value: 0 for s in ClientState} for d in deployment_ids
    }
    if not deployment_ids:
        return counts
    for deployment_id, state, count in session.execute(
        select(DeploymentClient.deployment_id, DeploymentClient.state, func.count())
        .where(DeploymentClient.deployment_id.in_(deployment_ids))
        .group_by(DeploymentClient.deployment_id, DeploymentClient.state)
    ):
        counts[deployment_id][state] = count
    return counts


def client_deployments(session: Session, client_id: str) -> list[dict[str, Any]]:
    """The deployments that target a client, with its state and last message in each."""
    rows = session.execute(
        select(DeploymentClient, Deployment)
        .join(Deployment, Deployment.deployment_id == DeploymentClient.deployment_id)
        .where(DeploymentClient.client_id == client_id)
        .order_by(Deployment.deployment_id.desc())
        .limit(500)
    ).all()
    return [
        {
            "deployment_id": d.deployment_id,
            "package_id": d.package_id,
            "program": d.program_name,
            "deployment_state": d.state,
            "state": row.state,
            "last_message_id": row.last_message_id,
            "last_message_time": row.last_message_time.isoformat()
            if row.last_message_time
            else None,
            "detail": row.detail,
        }
        for row, d in rows
    ]


def client_collections(session: Session, client_id: str) -> list[dict[str, str]]:
    """The collections a client is a member of, and why."""
    rows = session.execute(
        select(Collection.name, CollectionMember.reason)
        .join(CollectionMember, CollectionMember.collection_id == Collection.id)
        .where(CollectionMember.client_id == client_id)
        .order_by(Collection.name)
    ).all()
    return [{"name": name, "reason": reason} for name, reason in rows]


def dp_validation_history(session: Session, dp_name: str, limit: int = 50) -> list[dict[str, Any]]:
    """A DP's validations and reported mismatches (messages 2360-2362), newest first."""
    rows = session.scalars(
        select(StatusMessageRow)
        .where(
            StatusMessageRow.dp_name == dp_name,
            StatusMessageRow.message_id.in_(VALIDATION_MESSAGES),
        )
        .order_by(StatusMessageRow.time.desc(), StatusMessageRow.id.desc())
        .limit(limit)
    )
    return [message_dict(m) for m in rows]
