"""Read-only roll-ups across objects: the site at a glance, outcomes over time, distribution
progress, pauses and what needs attention, and what one client is part of.

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
#: Site status messages of DP validation: mismatch reported, validated, bad blobs found.
VALIDATION_MESSAGES = (2360, 2361, 2362)

SUCCESS_MESSAGES = tuple(sorted(m.id for m in CATALOG.values() if m.state is ClientState.SUCCEEDED))
FAILURE_MESSAGES = tuple(sorted(m.id for m in CATALOG.values() if m.state is ClientState.FAILED))
NOT_MET_MESSAGES = tuple(
    sorted(m.id for m in CATALOG.values() if m.state is ClientState.REQUIREMENTS_NOT_MET)
)


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
    """Deployment outcomes per UTC day (program succeeded / failed / requirements not met
    messages), oldest first.

    Two range counts per day on the (message ID, time) index: cheaper than grouping every
    message by a computed day, and the same SQL on SQLite and PostgreSQL."""
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    history = []
    for offset in range(days):
        start = first + timedelta(days=offset)
        counts = {}
        for key, ids in (
            ("succeeded", SUCCESS_MESSAGES),
            ("failed", FAILURE_MESSAGES),
            ("requirements_not_met", NOT_MET_MESSAGES),
        ):
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
    return [_with_reporter(message_dict(m)) for m in rows]


def _with_reporter(message: dict[str, Any]) -> dict[str, Any]:
    """A mismatch report (2360) names its client in %4; older rows have no client column."""
    strings = message["insertion_strings"]
    if message["message_id"] == 2360 and not message["client_id"] and len(strings) > 3:
        message["client_id"] = str(strings[3])
    return message


#: Site messages of a pause: by an administrator (3011) or by the error threshold (3015).
PAUSED_BY_ADMIN, PAUSED_BY_THRESHOLD = 3011, 3015
#: A client with at least this many failure messages in REPEAT_WINDOW fails repeatedly.
REPEAT_FAILURES, REPEAT_WINDOW = 2, timedelta(days=7)


def pause_causes(session: Session, deployment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Why each paused deployment of a page is paused, from its newest pause message (one
    query): {kind: "administrator" | "threshold", failed, threshold, time}."""
    if not deployment_ids:
        return {}
    rows = session.execute(
        select(
            StatusMessageRow.deployment_id,
            StatusMessageRow.message_id,
            StatusMessageRow.insertion_strings,
            StatusMessageRow.time,
        )
        .join(Deployment, Deployment.deployment_id == StatusMessageRow.deployment_id)
        .where(
            StatusMessageRow.deployment_id.in_(deployment_ids),
            StatusMessageRow.message_id.in_((PAUSED_BY_ADMIN, PAUSED_BY_THRESHOLD)),
            Deployment.state == "paused",
        )
        .order_by(StatusMessageRow.time, StatusMessageRow.id)
    ).all()
    causes: dict[str, dict[str, Any]] = {}
    for deployment_id, message_id, strings, time in rows:  # the newest one wins
        by_threshold = message_id == PAUSED_BY_THRESHOLD
        causes[str(deployment_id)] = {
            "kind": "threshold" if by_threshold else "administrator",
            "failed": str(strings[1]) if by_threshold and len(strings) > 1 else "",
            "threshold": str(strings[2]) if by_threshold and len(strings) > 2 else "",
            "time": time.isoformat(),
        }
    return causes


def deployments_of(
    session: Session,
    *,
    package_id: str | None = None,
    collection_id: int | None = None,
    app_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The deployments of one package or application, or aimed at one collection, newest
    first, with their clients per state (two queries)."""
    query = select(Deployment, Collection.name).join(
        Collection, Collection.id == Deployment.collection_id
    )
    if package_id is not None:
        query = query.where(Deployment.package_id == package_id)
    if collection_id is not None:
        query = query.where(Deployment.collection_id == collection_id)
    if app_id is not None:
        query = query.where(Deployment.app_id == app_id)
    rows = session.execute(query.order_by(Deployment.deployment_id.desc()).limit(limit)).all()
    counts = deployment_counts(session, [d.deployment_id for d, _name in rows])
    return [
        {
            "deployment_id": d.deployment_id,
            "package_id": d.package_id,
            "program": d.program_name,
            "app_id": d.app_id,
            "purpose": d.purpose,
            "collection": name,
            "state": d.state,
            "counts": counts[d.deployment_id],
        }
        for d, name in rows
    ]


def repeated_failures(
    session: Session, now: datetime | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """Clients whose programs failed at least REPEAT_FAILURES times in the last week."""
    since = (now or utcnow()) - REPEAT_WINDOW
    rows = session.execute(
        select(StatusMessageRow.client_id, func.count(), func.max(StatusMessageRow.time))
        .where(
            StatusMessageRow.message_id.in_(FAILURE_MESSAGES),
            StatusMessageRow.time >= since,
            StatusMessageRow.client_id.is_not(None),
        )
        .group_by(StatusMessageRow.client_id)
        .having(func.count() >= REPEAT_FAILURES)
        .order_by(func.count().desc(), StatusMessageRow.client_id)
        .limit(limit)
    ).all()
    names = dict(
        session.execute(
            select(Client.client_id, Client.hostname).where(
                Client.client_id.in_([r[0] for r in rows])
            )
        ).all()
    )
    return [
        {
            "client_id": client_id,
            "hostname": names.get(str(client_id), str(client_id)),
            "failures": count,
            "last": newest.isoformat(),
        }
        for client_id, count, newest in rows
    ]


def threshold_paused(session: Session) -> list[dict[str, Any]]:
    """Deployments the error threshold stopped (paused, newest pause message 3015)."""
    paused = list(
        session.scalars(
            select(Deployment.deployment_id)
            .where(Deployment.state == "paused")
            .order_by(Deployment.deployment_id)
            .limit(200)
        )
    )
    causes = pause_causes(session, paused)
    return [
        {"deployment_id": d, **causes[d]}
        for d in paused
        if causes.get(d, {}).get("kind") == "threshold"
    ]


def state_totals(session: Session) -> dict[str, int]:
    """Clients per state over every active deployment: what is outstanding right now."""
    totals = {s.value: 0 for s in ClientState}
    for state, count in session.execute(
        select(DeploymentClient.state, func.count())
        .join(Deployment, Deployment.deployment_id == DeploymentClient.deployment_id)
        .where(Deployment.state == "active")
        .group_by(DeploymentClient.state)
    ):
        totals[state] = count
    return totals
