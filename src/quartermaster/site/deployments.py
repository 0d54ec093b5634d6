"""Deployments (the old advertisements) and their status roll-up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, NotFound
from quartermaster.core.ids import DEPLOYMENT_ID_START, check_object_id, object_id
from quartermaster.core.status_catalog import ClientState
from quartermaster.site.db import next_counter
from quartermaster.site.membership import get_collection
from quartermaster.site.models import (
    Client,
    CollectionMember,
    Deployment,
    DeploymentClient,
    Program,
    utcnow,
)
from quartermaster.site.packages import get_package
from quartermaster.site.policy import bump_policy_serial

RERUN = ("never", "always", "if-failed", "if-succeeded")


def create_deployment(session: Session, site_code: str, package_id: str, program: str,
                      collection: str, available: datetime | None = None,
                      deadline: datetime | None = None, expires: datetime | None = None,
                      rerun: str = "if-failed") -> str:
    package = get_package(session, package_id)
    if session.scalar(select(Program).where(Program.package_id == package.package_id,
                                            Program.name == program)) is None:
        raise NotFound(f"package {package_id} has no program {program!r}",
                       f"add it with `qm program add {package_id} --name ... --command ...`")
    target = get_collection(session, collection)
    if rerun not in RERUN:
        raise InvalidInput(f"rerun behaviour {rerun!r} is not known", f"use one of {', '.join(RERUN)}")
    available = available or utcnow()
    deadline = deadline if deadline is not None else available
    if expires is not None and expires <= available:
        raise InvalidInput("the deployment would expire before it is available",
                           "give an --expires time after --available")
    deployment_id = object_id(site_code, next_counter(session, "deployment", DEPLOYMENT_ID_START))
    session.add(Deployment(deployment_id=deployment_id, package_id=package.package_id,
                           program_name=program, collection_id=target.id, available=available,
                           deadline=deadline, expires=expires, rerun=rerun))
    session.flush()
    members = session.scalars(select(CollectionMember.client_id).where(
        CollectionMember.collection_id == target.id)).all()
    session.add_all(DeploymentClient(deployment_id=deployment_id, client_id=c) for c in members)
    bump_policy_serial(session)
    return deployment_id


def get_deployment(session: Session, deployment_id: str) -> Deployment:
    check_object_id(deployment_id, "deployment ID")
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound(f"deployment {deployment_id} does not exist", "list them with `qm deploy list`")
    return deployment


def deployment_summary(deployment: Deployment) -> dict[str, Any]:
    return {"deployment_id": deployment.deployment_id, "package_id": deployment.package_id,
            "program": deployment.program_name, "collection_id": deployment.collection_id,
            "available": deployment.available.isoformat(),
            "deadline": deployment.deadline.isoformat() if deployment.deadline else None,
            "expires": deployment.expires.isoformat() if deployment.expires else None,
            "rerun": deployment.rerun, "state": deployment.state,
            "created": deployment.created.isoformat()}


def list_deployments(session: Session, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    query = select(Deployment).order_by(Deployment.deployment_id).limit(limit).offset(offset)
    return [deployment_summary(d) for d in session.scalars(query)]


def deployment_status(session: Session, deployment_id: str, limit: int = 1000,
                      offset: int = 0, state: str | None = None) -> dict[str, Any]:
    deployment = get_deployment(session, deployment_id)
    counts = {s.value: 0 for s in ClientState}
    for value, count in session.execute(
            select(DeploymentClient.state, func.count()).where(
                DeploymentClient.deployment_id == deployment_id).group_by(DeploymentClient.state)):
        counts[value] = count
    query = (select(DeploymentClient, Client.hostname)
             .join(Client, Client.client_id == DeploymentClient.client_id)
             .where(DeploymentClient.deployment_id == deployment_id)
             .order_by(Client.hostname).limit(limit).offset(offset))
    if state:
        query = query.where(DeploymentClient.state == state)
    rows = [{"client_id": row.client_id, "hostname": hostname, "state": row.state,
             "source_version": row.source_version, "last_message_id": row.last_message_id,
             "last_message_time": row.last_message_time.isoformat() if row.last_message_time else None,
             "detail": row.detail} for row, hostname in session.execute(query)]
    return {**deployment_summary(deployment), "targeted": sum(counts.values()),
            "counts": counts, "clients": rows}
