"""Rows found by the names administrators type, for the rooms on both sides of a dependency.

A collection is named by deployments (which target it) and by targeting (which keeps its
members and, through them, the deployments aimed at it): the lookup lives below both.
Clients are named the same way: by GUID or by host name, in the REST API, the CLI (which
calls it) and the console alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, NotFound
from quartermaster.site.models import Application, Client, Collection, Package


def get_collection(session: Session, name: str) -> Collection:
    collection = session.scalar(select(Collection).where(Collection.name == name))
    if collection is None:
        raise NotFound(f"collection {name!r} does not exist", "list them with `qm collection list`")
    return collection


#: How many candidates an ambiguous host name lists (the rest are counted).
CANDIDATES_SHOWN = 10


class AmbiguousName(Conflict):
    """A host name that several registered clients share: the caller must pick one."""

    code = "ambiguous"

    def __init__(self, message: str, hint: str, candidates: list[dict[str, str]]) -> None:
        super().__init__(message, hint)
        self.candidates = candidates


def find_client(session: Session, text: str) -> Client:
    """A client named by its ID (GUID) or by its host name (any case), as administrators
    type it. A host name several clients share is refused with the candidates, never
    guessed: an action on the wrong computer is worse than a question."""
    wanted = text.strip()
    try:
        by_id = session.get(Client, str(uuid.UUID(wanted)))
    except ValueError:
        by_id = None
    if by_id is not None:
        return by_id
    found = list(
        session.scalars(
            select(Client)
            .where(func.lower(Client.hostname) == wanted.lower())
            .order_by(Client.registered, Client.client_id)
            .limit(CANDIDATES_SHOWN + 1)
        )
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(
            f"no client has the ID or host name {wanted!r}",
            "list clients with `qm client list --search NAME` or the console's Clients page",
        )
    candidates = [
        {"client_id": c.client_id, "hostname": c.hostname, "registered": c.registered.isoformat()}
        for c in found[:CANDIDATES_SHOWN]
    ]
    listed = ", ".join(f"{c['client_id']} (registered {c['registered'][:10]})" for c in candidates)
    more = " and more" if len(found) > CANDIDATES_SHOWN else ""
    raise AmbiguousName(
        f"{len(found)}{'+' if more else ''} clients are named {wanted!r}: {listed}{more}",
        "give the client ID (GUID) of the one you mean",
        candidates,
    )


def hostnames(session: Session, client_ids: Iterable[str | None]) -> dict[str, str]:
    """Host names of a page's clients, in one query (no query per row)."""
    wanted = sorted({c for c in client_ids if c})
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(Client.client_id, Client.hostname).where(Client.client_id.in_(wanted))
        ).all()
    )


def package_names(session: Session, package_ids: Iterable[str | None]) -> dict[str, str]:
    """Names of a page's packages, in one query."""
    wanted = sorted({p for p in package_ids if p})
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(Package.package_id, Package.name).where(Package.package_id.in_(wanted))
        ).all()
    )


def application_names(session: Session, app_ids: Iterable[str | None]) -> dict[str, str]:
    """Names of a page's applications, in one query."""
    wanted = sorted({a for a in app_ids if a})
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(Application.app_id, Application.name).where(Application.app_id.in_(wanted))
        ).all()
    )


def client_filter(session: Session, text: str | None) -> str | None:
    """The client ID a filter means: a GUID as given (messages may outlive their client),
    a host name through `find_client` (unknown or ambiguous names are refused)."""
    if not text or not text.strip():
        return None
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return find_client(session, text).client_id


def collection_names(session: Session) -> list[str]:
    """Every collection's name, sorted: what a form offers to pick from (no member counts)."""
    return list(session.scalars(select(Collection.name).order_by(Collection.name)))
