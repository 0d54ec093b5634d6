"""Collections and their evaluated membership, and the deployment targets that follow from it.

Membership is stored (CollectionMember, with the reason) instead of computed per policy
request, because clients poll far more often than rules or clients change. Every change that
can move a client in or out re-evaluates here, inside the caller's transaction: a rule,
include, exclude or direct member of a collection (that collection and every collection that
includes or excludes it, in dependency order), and a client registering or reporting new
properties (every collection, for that client only). New members of a deployed collection get
their DeploymentClient row; members that leave keep theirs (status history stays), and policy
no longer lists the deployment for them, because policy joins on the evaluated membership.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, KeysView
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.schedule import parse_window
from quartermaster.site.collection_rules import (
    Rule,
    client_facts,
    evaluate_collection,
    evaluation_order,
    parse_rule,
)
from quartermaster.site.deployments.deployments import reevaluate_rollouts
from quartermaster.site.lookups import find_client, get_collection
from quartermaster.site.models import (
    Client,
    Collection,
    CollectionDirect,
    CollectionLink,
    CollectionMember,
    CollectionRule,
    Deployment,
    DeploymentClient,
    MaintenanceWindow,
)
from quartermaster.site.policy_serial import bump_policy_serial
from quartermaster.site.targeting.clients import check_facts, client_summary, get_client

#: Limits per collection: a collection is something an administrator reads in one screen.
MAX_RULES = 100
MAX_LINKS = 100
MAX_WINDOWS = 50
LINK_KINDS = ("include", "exclude")
_LOCK_KEY = 0x716D_0004  # PostgreSQL advisory lock: one membership evaluation at a time


# --------------------------------------------------------------------------- collections


def create_collection(
    session: Session,
    name: str,
    comment: str = "",
    *,
    rules: Iterable[str] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    windows: Iterable[str] = (),
) -> Collection:
    """A collection with all its parts at once, so a mistake in any part creates nothing."""
    name = name.strip()
    if not name or len(name) > 200 or "/" in name:
        raise InvalidInput(
            f"collection name {name!r} is not valid", "use 1 to 200 characters without '/'"
        )
    if session.scalar(select(Collection).where(Collection.name == name)) is not None:
        raise Conflict(f"collection {name!r} already exists", "choose another name")
    collection = Collection(name=name, comment=comment)
    session.add(collection)
    session.flush()
    _lock(session)
    for rule in rules:
        _add_rule(session, collection, rule)
    for other in include:
        _link(session, collection, other, "include")
    for other in exclude:
        _link(session, collection, other, "exclude")
    for window in windows:
        _add_window(session, collection, window)
    refresh(session, [collection.id])
    return collection


def add_member(session: Session, name: str, client_id: str) -> None:
    """Add a client by ID or host name (a direct member); it is a member unless an
    excluded collection holds it or it is not approved."""
    collection = get_collection(session, name)
    client = find_client(session, client_id)
    _lock(session)
    if session.get(CollectionDirect, (collection.id, client.client_id)) is None:
        session.add(CollectionDirect(collection_id=collection.id, client_id=client.client_id))
        refresh(session, [collection.id])


#: At most this many client IDs per bulk request (a fleet is added in a few requests).
MAX_BULK_MEMBERS = 50_000


def add_members(session: Session, name: str, client_ids: list[str]) -> int:
    """Add many clients as direct members with one re-evaluation; how many were new.
    Unknown client IDs add nothing (the whole request is refused)."""
    if len(client_ids) > MAX_BULK_MEMBERS:
        raise InvalidInput(
            f"at most {MAX_BULK_MEMBERS} clients per request",
            "send the members in several requests",
        )
    collection = get_collection(session, name)
    wanted = list(dict.fromkeys(client_ids))
    _lock(session)
    known: set[str] = set()
    present: set[str] = set()
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        known.update(session.scalars(select(Client.client_id).where(Client.client_id.in_(chunk))))
        present.update(
            session.scalars(
                select(CollectionDirect.client_id).where(
                    CollectionDirect.collection_id == collection.id,
                    CollectionDirect.client_id.in_(chunk),
                )
            )
        )
    missing = [c for c in wanted if c not in known]
    if missing:
        raise NotFound(
            f"{len(missing)} client(s) are not registered, e.g. {missing[0]}",
            "list clients with `qm client list`",
        )
    new = [c for c in wanted if c not in present]
    if new:
        session.execute(
            insert(CollectionDirect),
            [{"collection_id": collection.id, "client_id": c} for c in new],
        )
        refresh(session, [collection.id])
    return len(new)


def remove_member(session: Session, name: str, client_id: str) -> None:
    collection = get_collection(session, name)
    client = find_client(session, client_id)
    _lock(session)
    direct = session.get(CollectionDirect, (collection.id, client.client_id))
    if direct is None:
        raise NotFound(
            f"client {client_id} is not a direct member of {name!r}",
            "a member by rule or include leaves when the rule or include changes",
        )
    session.delete(direct)
    refresh(session, [collection.id])


def add_rule(session: Session, name: str, rule: str) -> None:
    collection = get_collection(session, name)
    _lock(session)
    _add_rule(session, collection, rule)
    refresh(session, [collection.id])


def remove_rule(session: Session, name: str, rule: str) -> None:
    collection = get_collection(session, name)
    canonical = str(parse_rule(rule))
    _lock(session)
    rows = _rules_of(session, collection.id)
    match = next((r for r in rows if r.text == canonical), None)
    if match is None:
        listed = "; ".join(r.text for r in rows[:5]) or "none"
        raise NotFound(
            f"collection {name!r} has no rule {canonical}",
            f"its rules are: {listed} (see `qm collection show`)",
        )
    session.delete(match)
    refresh(session, [collection.id])


def link(session: Session, name: str, other: str, kind: str) -> None:
    """Include or exclude another collection; a loop of links is refused, naming it."""
    collection = get_collection(session, name)
    _lock(session)
    _link(session, collection, other, kind)
    refresh(session, [collection.id])


def unlink(session: Session, name: str, other: str, kind: str) -> None:
    collection = get_collection(session, name)
    target = get_collection(session, other)
    _lock(session)
    row = session.get(CollectionLink, (collection.id, target.id))
    if row is None or row.kind != kind:
        raise NotFound(
            f"collection {name!r} does not {kind} {other!r}",
            "see its includes and excludes with `qm collection show`",
        )
    session.delete(row)
    refresh(session, [collection.id])


def add_window(session: Session, name: str, window: str) -> None:
    collection = get_collection(session, name)
    _lock(session)
    _add_window(session, collection, window)
    bump_policy_serial(session)  # members' policy carries the windows


def remove_window(session: Session, name: str, window: str) -> None:
    collection = get_collection(session, name)
    normalized = parse_window(window).text
    row = session.scalar(
        select(MaintenanceWindow).where(
            MaintenanceWindow.collection_id == collection.id, MaintenanceWindow.text == normalized
        )
    )
    if row is None:
        raise NotFound(
            f"collection {name!r} has no maintenance window {normalized!r}",
            "see its windows with `qm collection show`",
        )
    session.delete(row)
    bump_policy_serial(session)


def _add_rule(session: Session, collection: Collection, text_: str) -> None:
    canonical = str(parse_rule(text_))
    rows = _rules_of(session, collection.id)
    if any(r.text == canonical for r in rows):
        return
    if len(rows) >= MAX_RULES:
        raise InvalidInput(
            f"collection {collection.name!r} already has {MAX_RULES} rules",
            "combine rules with 'or', or split the collection",
        )
    session.add(CollectionRule(collection_id=collection.id, text=canonical))


def _rules_of(session: Session, collection_id: int) -> list[CollectionRule]:
    return list(
        session.scalars(
            select(CollectionRule)
            .where(CollectionRule.collection_id == collection_id)
            .order_by(CollectionRule.id)
        )
    )


def _link(session: Session, collection: Collection, other: str, kind: str) -> None:
    if kind not in LINK_KINDS:
        raise InvalidInput(f"link kind {kind!r} is not known", "use include or exclude")
    target = get_collection(session, other)
    if target.id == collection.id:
        raise InvalidInput(
            f"collection {collection.name!r} cannot {kind} itself", "name another collection"
        )
    row = session.get(CollectionLink, (collection.id, target.id))
    if row is not None and row.kind == kind:
        return
    if row is not None:
        raise Conflict(
            f"collection {collection.name!r} already {row.kind}s {other!r}",
            f"remove that first: `qm collection {row.kind} {collection.name!r} {other!r} --remove`",
        )
    count = (
        session.scalar(
            select(func.count())
            .select_from(CollectionLink)
            .where(CollectionLink.collection_id == collection.id)
        )
        or 0
    )
    if count >= MAX_LINKS:
        raise InvalidInput(
            f"collection {collection.name!r} already has {MAX_LINKS} includes and excludes",
            "combine them into fewer collections",
        )
    session.add(CollectionLink(collection_id=collection.id, other_id=target.id, kind=kind))


def _add_window(session: Session, collection: Collection, window: str) -> None:
    normalized = parse_window(window).text
    texts = set(
        session.scalars(
            select(MaintenanceWindow.text).where(MaintenanceWindow.collection_id == collection.id)
        )
    )
    if normalized in texts:
        return
    if len(texts) >= MAX_WINDOWS:
        raise InvalidInput(
            f"collection {collection.name!r} already has {MAX_WINDOWS} maintenance windows",
            "use day ranges, e.g. 'Mon-Fri 01:00-03:00 UTC'",
        )
    session.add(MaintenanceWindow(collection_id=collection.id, text=normalized))


# --------------------------------------------------------------------------- clients


def client_changed(session: Session, client_id: str) -> bool:
    """Re-evaluate one client in every collection: call after it registers or reports new
    properties. True when its membership (and so possibly its policy) changed."""
    client = get_client(session, client_id)
    return _refresh(session, None, [client])


def lock_for_client(session: Session) -> None:
    """Take the lock one client's re-evaluation takes (shared), e.g. before registering it.

    A new client is nobody's direct member, so only query rules (and collections that
    include rule-based ones) can take it in: with no rule at all there is nothing to
    evaluate. Under this lock a check for rules sees every rule committed before it, and a
    rule change that starts later waits for the registration and then sees the client.
    """
    _lock(session, shared=True)


def report_inventory(session: Session, client: Client, facts: dict[str, Any]) -> bool:
    """Store what the client reports now (the registration facts) and re-evaluate it."""
    check_facts(facts)
    for key in ("hostname", "os", "os_version", "architecture", "agent_version"):
        setattr(client, key, str(facts.get(key, "")))
    client.ip_addresses = [str(a) for a in facts.get("ip_addresses", [])]
    client.properties = dict(facts.get("properties", {}))
    session.flush()
    return _refresh(session, None, [client])


# --------------------------------------------------------------------------- evaluation


def refresh(session: Session, collection_ids: Iterable[int]) -> bool:
    """Re-evaluate these collections and every collection that depends on them, for every
    client. True when some membership changed."""
    return _refresh(session, set(collection_ids), None)


@dataclass
class _Graph:
    names: dict[int, str]
    links: dict[int, list[tuple[str, int, str]]]  # collection -> [(other name, id, kind)]

    def order(self) -> list[int]:
        """Dependency order; refuses a loop of includes and excludes, naming it."""
        by_name = {name: cid for cid, name in self.names.items()}
        references = {
            name: {other for other, _, _ in self.links.get(cid, [])}
            for cid, name in self.names.items()
        }
        return [by_name[name] for name in evaluation_order(references)]

    def dependents(self, start: set[int]) -> set[int]:
        """The collections given and all that include or exclude them, directly or not."""
        users: dict[int, set[int]] = defaultdict(set)
        for cid, links in self.links.items():
            for _, other, _ in links:
                users[other].add(cid)
        found, pending = set(start), list(start)
        while pending:
            for user in users[pending.pop()]:
                if user not in found:
                    found.add(user)
                    pending.append(user)
        return found


@dataclass
class _Changes:
    added: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    removed: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def collections(self) -> set[int]:
        return {cid for cid, ids in (*self.added.items(), *self.removed.items()) if ids}


def _refresh(session: Session, affected: set[int] | None, only: list[Client] | None) -> bool:
    # One client's re-evaluation touches that client's rows only (its own row is locked by
    # whoever changed it), so such evaluations run side by side; a collection's re-evaluation
    # reads every client and waits for them all.
    _lock(session, shared=only is not None)
    session.flush()
    graph = _load_graph(session)
    order = graph.order()
    scope = set(graph.names) if affected is None else graph.dependents(affected)
    if only is None:
        clients = list(session.scalars(select(Client).where(Client.approval == "approved")))
        client_ids: list[str] | None = None
    else:
        clients = [c for c in only if c.approval == "approved"]
        client_ids = [c.client_id for c in only]
    facts = [client_facts(c) for c in clients]
    needed = scope | {other for cid in scope for _, other, _ in graph.links.get(cid, [])}
    stored = _stored(session, needed, client_ids)
    rules = _rules(session, scope)
    direct = _direct(session, scope, client_ids)
    results: dict[int, KeysView[str]] = {}
    changes = _Changes()

    def members_of(other: int) -> KeysView[str]:
        return results[other] if other in results else stored.get(other, {}).keys()

    for cid in order:
        if cid not in scope:
            continue
        links = graph.links.get(cid, [])
        members = evaluate_collection(
            facts,
            direct=direct.get(cid, set()),
            rules=rules.get(cid, []),
            include={n: members_of(o) for n, o, k in links if k == "include"},
            exclude={n: members_of(o) for n, o, k in links if k == "exclude"},
        )
        results[cid] = members.keys()
        _apply(session, cid, members, stored.get(cid, {}), changes)
    return _after(session, changes)


def _lock(session: Session, shared: bool = False) -> None:
    """Serialize membership changes on PostgreSQL (SQLite serializes every writer anyway):
    exclusive for a collection's re-evaluation, shared for one client's."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(:key)"), {"key": _LOCK_KEY})


def _load_graph(session: Session) -> _Graph:
    names = {cid: name for cid, name in session.execute(select(Collection.id, Collection.name))}
    links: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
    for row in session.scalars(select(CollectionLink)):
        links[row.collection_id].append((names[row.other_id], row.other_id, row.kind))
    for entries in links.values():
        entries.sort()
    return _Graph(names, links)


def _stored(
    session: Session, collection_ids: set[int], client_ids: list[str] | None
) -> dict[int, dict[str, CollectionMember]]:
    query = select(CollectionMember).where(CollectionMember.collection_id.in_(collection_ids))
    if client_ids is not None:
        query = query.where(CollectionMember.client_id.in_(client_ids))
    stored: dict[int, dict[str, CollectionMember]] = defaultdict(dict)
    for row in session.scalars(query):
        stored[row.collection_id][row.client_id] = row
    return stored


@lru_cache(maxsize=4096)
def _parsed(rule_text: str) -> Rule:
    return parse_rule(rule_text)


def _rules(session: Session, collection_ids: set[int]) -> dict[int, list[Rule]]:
    rules: dict[int, list[Rule]] = defaultdict(list)
    for row in session.scalars(
        select(CollectionRule)
        .where(CollectionRule.collection_id.in_(collection_ids))
        .order_by(CollectionRule.id)
    ):
        rules[row.collection_id].append(_parsed(row.text))
    return rules


def _direct(
    session: Session, collection_ids: set[int], client_ids: list[str] | None
) -> dict[int, set[str]]:
    query = select(CollectionDirect.collection_id, CollectionDirect.client_id).where(
        CollectionDirect.collection_id.in_(collection_ids)
    )
    if client_ids is not None:
        query = query.where(CollectionDirect.client_id.in_(client_ids))
    direct: dict[int, set[str]] = defaultdict(set)
    for collection_id, client_id in session.execute(query):
        direct[collection_id].add(client_id)
    return direct


def _apply(
    session: Session,
    collection_id: int,
    members: dict[str, str],
    stored: dict[str, CollectionMember],
    changes: _Changes,
) -> None:
    for client_id, reason in members.items():
        row = stored.get(client_id)
        if row is None:
            changes.added[collection_id].append(client_id)
        elif row.reason != reason:
            row.reason = reason
    new = [
        {"collection_id": collection_id, "client_id": c, "reason": members[c]}
        for c in changes.added.get(collection_id, [])
    ]
    if new:  # one statement: a fleet may join a collection at once
        session.execute(insert(CollectionMember), new)
    gone = [client_id for client_id in stored if client_id not in members]
    for chunk in _chunks(gone):
        session.execute(
            delete(CollectionMember).where(
                CollectionMember.collection_id == collection_id,
                CollectionMember.client_id.in_(chunk),
            ),
            execution_options={"synchronize_session": False},
        )
    for client_id in gone:
        session.expunge(stored[client_id])
    changes.removed[collection_id].extend(gone)


def _chunks(items: list[str], size: int = 5000) -> Iterable[list[str]]:
    """Slices small enough for one IN list (SQLite allows 32,766 parameters)."""
    return (items[start : start + size] for start in range(0, len(items), size))


def _after(session: Session, changes: _Changes) -> bool:
    """Targets for new members, a new policy serial, and rollouts whose counts moved."""
    changed = changes.collections()
    if not changed:
        return False
    session.flush()
    for collection_id, client_ids in changes.added.items():
        target_deployments(session, collection_id, client_ids)
    bump_policy_serial(session)
    phased = session.scalars(
        select(Deployment.deployment_id).where(
            Deployment.collection_id.in_(changed), Deployment.phase_plan.is_not(None)
        )
    ).all()
    reevaluate_rollouts(session, phased)
    return True


def target_deployments(session: Session, collection_id: int, client_ids: list[str]) -> None:
    """Give new members a row in each deployment to the collection (kept if they leave)."""
    if not client_ids:
        return
    deployments = session.scalars(
        select(Deployment.deployment_id).where(Deployment.collection_id == collection_id)
    ).all()
    for deployment_id in deployments:
        for chunk in _chunks(client_ids):
            existing = set(
                session.scalars(
                    select(DeploymentClient.client_id).where(
                        DeploymentClient.deployment_id == deployment_id,
                        DeploymentClient.client_id.in_(chunk),
                    )
                )
            )
            rows = [
                {"deployment_id": deployment_id, "client_id": c} for c in chunk if c not in existing
            ]
            if rows:
                session.execute(insert(DeploymentClient), rows)


# --------------------------------------------------------------------------- views


def show_collection(
    session: Session, name: str, limit: int = 1000, offset: int = 0
) -> dict[str, Any]:
    """Members with their reasons, and everything that decides membership."""
    collection = get_collection(session, name)
    cid = collection.id
    total = (
        session.scalar(
            select(func.count())
            .select_from(CollectionMember)
            .where(CollectionMember.collection_id == cid)
        )
        or 0
    )
    rows = session.execute(
        select(Client, CollectionMember.reason)
        .join(CollectionMember, CollectionMember.client_id == Client.client_id)
        .where(CollectionMember.collection_id == cid)
        .order_by(Client.hostname, Client.client_id)
        .limit(limit)
        .offset(offset)
    ).all()
    links = session.execute(
        select(CollectionLink.kind, Collection.name)
        .join(Collection, Collection.id == CollectionLink.other_id)
        .where(CollectionLink.collection_id == cid)
        .order_by(Collection.name)
    ).all()
    return {
        "name": collection.name,
        "comment": collection.comment,
        "created": collection.created.isoformat(),
        "member_count": total,
        "members": [{**client_summary(c), "reason": reason} for c, reason in rows],
        "rules": [r.text for r in _rules_of(session, cid)],
        "includes": [n for kind, n in links if kind == "include"],
        "excludes": [n for kind, n in links if kind == "exclude"],
        "windows": list(
            session.scalars(
                select(MaintenanceWindow.text)
                .where(MaintenanceWindow.collection_id == cid)
                .order_by(MaintenanceWindow.id)
            )
        ),
        "direct_members": list(
            session.scalars(
                select(CollectionDirect.client_id)
                .where(CollectionDirect.collection_id == cid)
                .order_by(CollectionDirect.client_id)
            )
        ),
    }


def list_collections(session: Session) -> list[dict[str, Any]]:
    counts = {
        cid: n
        for cid, n in session.execute(
            select(CollectionMember.collection_id, func.count()).group_by(
                CollectionMember.collection_id
            )
        )
    }
    rules = {
        cid: n
        for cid, n in session.execute(
            select(CollectionRule.collection_id, func.count()).group_by(
                CollectionRule.collection_id
            )
        )
    }
    return [
        {
            "name": c.name,
            "comment": c.comment,
            "member_count": counts.get(c.id, 0),
            "rule_count": rules.get(c.id, 0),
        }
        for c in session.scalars(select(Collection).order_by(Collection.name))
    ]
