"""Rows found by the names administrators type, for the rooms on both sides of a dependency.

A collection is named by deployments (which target it) and by targeting (which keeps its
members and, through them, the deployments aimed at it): the lookup lives below both.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import NotFound
from quartermaster.site.models import Collection


def get_collection(session: Session, name: str) -> Collection:
    collection = session.scalar(select(Collection).where(Collection.name == name))
    if collection is None:
        raise NotFound(f"collection {name!r} does not exist", "list them with `qm collection list`")
    return collection
