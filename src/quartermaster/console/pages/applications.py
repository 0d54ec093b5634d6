"""Applications: the list, and one application's revisions, detection rules, dependencies
and supersedence (drawn as a small graph), and compliance per deployment with the evidence
of each client's last evaluation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from quartermaster.console.web import PAGE_SIZE, Pager, get_ctx, page_router, render, signed_in
from quartermaster.site.applications.graph import current_edges
from quartermaster.site.applications.records import list_applications, show_application
from quartermaster.site.deployments import reports
from quartermaster.site.deployments.deployments import deployment_status
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import application_names, package_names

router = page_router()
#: Deployments of one application shown with their clients' evidence, newest first.
DEPLOYMENTS_SHOWN = 10
#: Clients per deployment shown with their evidence.
CLIENTS_SHOWN = 100


@router.get("/applications")
def application_list(
    request: Request,
    principal: Annotated[Principal, signed_in("application.read")],
    offset: int = Query(0, ge=0, le=10_000_000),
) -> Response:
    with get_ctx(request).db.session() as session:
        rows = list_applications(session, PAGE_SIZE + 1, offset)
        packages = package_names(session, [r["package_id"] for r in rows])
    return render(
        request,
        "applications.html",
        principal,
        section="applications",
        pager=Pager(offset, rows),
        packages=packages,
    )


@router.get("/applications/{app_id}")
def application_page(
    request: Request, app_id: str, principal: Annotated[Principal, signed_in("application.read")]
) -> Response:
    app_id = app_id.upper()
    with get_ctx(request).db.session() as session:
        app = show_application(session, app_id)
        edges = _neighbourhood(current_edges(session), app_id)
        names = application_names(session, {a for edge in edges for a in edge[:2]})
        packages = package_names(session, [r["package_id"] for r in app["revisions"]])
        targeted = reports.deployments_of(session, app_id=app_id, limit=DEPLOYMENTS_SHOWN)
        compliance = [
            deployment_status(session, d["deployment_id"], limit=CLIENTS_SHOWN) for d in targeted
        ]
    nodes = [
        (a, names.get(a, a)) for a in dict.fromkeys([app_id, *(x for e in edges for x in e[:2])])
    ]
    return render(
        request,
        "application.html",
        principal,
        section="applications",
        app=app,
        current=next(
            (r for r in app["revisions"] if r["revision"] == app["current_revision"]), None
        ),
        edges=edges,
        nodes=nodes,
        names=names,
        packages=packages,
        compliance=compliance,
    )


def _neighbourhood(
    edges: dict[str, list[tuple[str, str]]], app_id: str
) -> list[tuple[str, str, str]]:
    """(from, to, kind) of the edges that touch `app_id`: what it needs or replaces, and
    what needs or replaces it."""
    found: list[tuple[str, str, str]] = []
    for start, outgoing in sorted(edges.items()):
        for kind, end in outgoing:
            if app_id in (start, end):
                found.append((start, end, "depends on" if kind == "depends" else kind))
    return found
