"""Compliance per application: every client evaluated for it, across its deployments.

A client targeted by several deployments of one application shows the row of its newest
message; its state is what detection said there (installed, not installed), or failed,
requirements not met, unknown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.site.applications.records import get_application
from quartermaster.site.models import Client, Deployment, DeploymentClient

COMPLIANCE_STATES = ("installed", "not_installed", "failed", "requirements_not_met", "unknown")


def compliance_state(state: str) -> str:
    """A roll-up state as compliance counts it (program-level states are unknown here)."""
    return state if state in COMPLIANCE_STATES else "unknown"


def application_status(session: Session, app_id: str, limit: int = 10000) -> dict[str, Any]:
    application = get_application(session, app_id)
    rows = session.execute(
        select(DeploymentClient, Deployment.purpose, Client.hostname)
        .join(Deployment, Deployment.deployment_id == DeploymentClient.deployment_id)
        .join(Client, Client.client_id == DeploymentClient.client_id)
        .where(Deployment.app_id == app_id)
        .limit(limit)
    ).all()
    newest: dict[str, tuple[DeploymentClient, str | None, str]] = {}
    for row, purpose, hostname in rows:
        known = newest.get(row.client_id)
        if known is None or _time(row) > _time(known[0]):
            newest[row.client_id] = (row, purpose, hostname)
    clients = [
        {
            "client_id": row.client_id,
            "hostname": hostname,
            "state": compliance_state(row.state),
            "deployment_id": row.deployment_id,
            "purpose": purpose,
            "last_evaluated": row.last_evaluated.isoformat() if row.last_evaluated else None,
            "last_message_id": row.last_message_id,
            "detail": row.detail,
            "evidence": row.evidence,
        }
        for row, purpose, hostname in sorted(newest.values(), key=lambda r: r[2])
    ]
    counts = {state: 0 for state in COMPLIANCE_STATES}
    for row, _, _ in newest.values():
        counts[compliance_state(row.state)] += 1
    return {
        "app_id": application.app_id,
        "name": application.name,
        "current_revision": application.current_revision,
        "counts": counts,
        "clients": clients,
    }


def _time(row: DeploymentClient) -> str:
    when = row.last_message_time
    return when.isoformat() if when else ""
