"""The dependency and supersedence graph between applications' current revisions.

An edge A → B means A's current revision depends on B or supersedes B. A cycle (A needs B
needs A, or A replaces B replaces A) can never be installed in order, so a revision that
would close one is refused, naming the cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import Conflict
from quartermaster.site.models import Application, ApplicationLink, ApplicationRevision

Edge = tuple[str, str]  # (kind, other application)


def current_edges(session: Session) -> dict[str, list[Edge]]:
    """Every application's outgoing edges, from its current revision."""
    rows = session.execute(
        select(ApplicationRevision.app_id, ApplicationLink.kind, ApplicationLink.other_app_id)
        .join(ApplicationLink, ApplicationLink.revision_id == ApplicationRevision.id)
        .join(
            Application,
            (Application.app_id == ApplicationRevision.app_id)
            & (Application.current_revision == ApplicationRevision.revision),
        )
        .order_by(ApplicationLink.kind, ApplicationLink.position)
    )
    edges: dict[str, list[Edge]] = {}
    for app_id, kind, other in rows:
        edges.setdefault(app_id, []).append((kind, other))
    return edges


def check_no_cycle(session: Session, app_id: str, new_edges: Iterable[Edge]) -> None:
    """Refuse `new_edges` for `app_id` if they close a cycle; the error names it."""
    edges = current_edges(session)
    edges[app_id] = list(new_edges)
    path = _path_back(edges, app_id)
    if path:
        raise Conflict(
            f"this would make a cycle: {_describe(app_id, path)}",
            "an application cannot (indirectly) depend on or supersede itself; "
            "remove one of these links",
        )


def _path_back(edges: dict[str, list[Edge]], start: str) -> list[Edge]:
    """A path of edges from `start` back to itself, or []."""
    stack: list[tuple[str, list[Edge]]] = [(start, [])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for kind, other in edges.get(node, []):
            step = [*path, (kind, other)]
            if other == start:
                return step
            if other not in seen:
                seen.add(other)
                stack.append((other, step))
    return []


def _describe(start: str, path: list[Edge]) -> str:
    words = {"depends": "depends on", "supersedes": "supersedes"}
    text, node = start, start
    for kind, other in path:
        text += f" {words[kind]} {other}"
        node = other
    if node != start:
        raise ValueError(f"{text} is not a cycle back to {start}")
    return text


def closure(edges: dict[str, list[Edge]], roots: Iterable[str]) -> list[str]:
    """Every application the roots need, themselves included, depth first (sorted roots)."""
    found: list[str] = []
    pending = sorted(set(roots), reverse=True)
    while pending:
        app_id = pending.pop()
        if app_id in found:
            continue
        found.append(app_id)
        pending.extend(other for _, other in reversed(edges.get(app_id, [])))
    return found


def supersedes_of(session: Session, revision_id: int) -> list[dict[str, str]]:
    """The applications a revision supersedes and how (upgrade or uninstall), in order."""
    rows = session.execute(
        select(ApplicationLink.other_app_id, ApplicationLink.mode)
        .where(ApplicationLink.revision_id == revision_id, ApplicationLink.kind == "supersedes")
        .order_by(ApplicationLink.position)
    )
    return [{"app_id": other, "mode": mode} for other, mode in rows]
