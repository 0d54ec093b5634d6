"""Collections and their evaluated membership, and the deployment targets that follow from it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.site.clients import client_summary, get_client
from quartermaster.site.models import Client, Collection, CollectionMember, Deployment, DeploymentClient
from quartermaster.site.policy import bump_policy_serial


def get_collection(session: Session, name: str) -> Collection:
    collection = session.scalar(select(Collection).where(Collection.name == name))
    if collection is None:
        raise NotFound(f"collection {name!r} does not exist", "list them with `qm collection list`")
    return collection


def create_collection(session: Session, name: str, comment: str = "") -> Collection:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a collection name is 1 to 200 characters")
    if session.scalar(select(Collection).where(Collection.name == name)) is not None:
        raise Conflict(f"collection {name!r} already exists", "choose another name")
    collection = Collection(name=name, comment=comment)
    session.add(collection)
    session.flush()
    return collection


def add_member(session: Session, name: str, client_id: str) -> None:
    collection = get_collection(session, name)
    client = get_client(session, client_id)
    if session.get(CollectionMember, (collection.id, client.client_id)) is not None:
        return
    session.add(CollectionMember(collection_id=collection.id, client_id=client.client_id,
                                 reason="direct member"))
    target_deployments(session, collection.id, [client.client_id])
    bump_policy_serial(session)


def target_deployments(session: Session, collection_id: int, client_ids: list[str]) -> None:
    """Give newly added members a row in each deployment to the collection."""
    deployments = session.scalars(select(Deployment.deployment_id).where(
        Deployment.collection_id == collection_id)).all()
    for deployment_id in deployments:
        for client_id in client_ids:
            if session.get(DeploymentClient, (deployment_id, client_id)) is None:
                session.add(DeploymentClient(deployment_id=deployment_id, client_id=client_id))


def show_collection(session: Session, name: str) -> dict[str, Any]:
    collection = get_collection(session, name)
    rows = session.execute(select(Client, CollectionMember.reason).join(
        CollectionMember, CollectionMember.client_id == Client.client_id).where(
        CollectionMember.collection_id == collection.id).order_by(Client.hostname)).all()
    return {"name": collection.name, "comment": collection.comment,
            "member_count": len(rows),
            "members": [{**client_summary(c), "reason": reason} for c, reason in rows]}


def list_collections(session: Session) -> list[dict[str, Any]]:
    return [{"name": c.name, "comment": c.comment}
            for c in session.scalars(select(Collection).order_by(Collection.name))]
