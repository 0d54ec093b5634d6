"""Cross-links: the deployments of one package and those aimed at one collection. The
package and collection pages load these lists into themselves (and link to them without
JavaScript), so each list is one place, shown wherever it is useful."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response

from quartermaster.console.charts import Part
from quartermaster.console.formatting import label
from quartermaster.console.web import get_ctx, page_router, render, signed_in
from quartermaster.site.content.packages import get_package
from quartermaster.site.deployments import reports
from quartermaster.site.distribution import health
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import (
    application_names,
    get_collection,
    hostnames,
    package_names,
)

router = page_router()
ORDER = ("succeeded", "in_progress", "failed", "unknown", "requirements_not_met")


def _parts(counts: dict[str, int]) -> list[Part]:
    return [Part(s, label(s), counts.get(s, 0)) for s in ORDER]


def _answer(
    request: Request, principal: Principal, part: str, title: str, back: str, rows: list[Any]
) -> Response:
    with get_ctx(request).db.session() as session:
        names = {
            **package_names(session, [r["package_id"] for r in rows]),
            **application_names(session, [r["app_id"] for r in rows]),
        }
        paused = reports.pause_causes(session, [r["deployment_id"] for r in rows])
    return render(
        request,
        "_related_deployments.html" if part else "related_deployments.html",
        principal,
        section="deployments",
        title=title,
        back=back,
        rows=rows,
        names=names,
        paused=paused,
        parts=_parts,
    )


@router.get("/packages/{package_id}/deployments")
def package_deployments(
    request: Request,
    package_id: str,
    principal: Annotated[Principal, signed_in("deployment.read")],
    part: str = Query("", pattern="^(rows)?$"),
) -> Response:
    with get_ctx(request).db.session() as session:
        package = get_package(session, package_id)
        rows = reports.deployments_of(session, package_id=package.package_id)
        title = f"Deployments of {package.name}"
        back = f"/console/packages/{package.package_id}"
    return _answer(request, principal, part, title, back, rows)


@router.get("/collections/{name}/deployments")
def collection_deployments(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("deployment.read")],
    part: str = Query("", pattern="^(rows)?$"),
) -> Response:
    with get_ctx(request).db.session() as session:
        collection = get_collection(session, name)
        rows = reports.deployments_of(session, collection_id=collection.id)
        title = f"Deployments to {collection.name}"
        back = f"/console/collections/{collection.name}"
    return _answer(request, principal, part, title, back, rows)


@router.get("/packages/{package_id}/content-status")
def package_content_status(
    request: Request,
    package_id: str,
    principal: Annotated[Principal, signed_in("dp.read")],
    part: str = Query("", pattern="^(rows)?$"),
) -> Response:
    """Where the package's copies stand on every DP, counted, with the last message."""
    with get_ctx(request).db.session() as session:
        package = get_package(session, package_id)
        status = health.package_content_status(session, package.package_id)
        names = hostnames(
            session, [c["last_message"]["client_id"] for c in status["copies"] if c["last_message"]]
        )
        name, package_id = package.name, package.package_id
    return render(
        request,
        "_content_status.html" if part else "content_status.html",
        principal,
        section="packages",
        title=f"Content status of {name}",
        back=f"/console/packages/{package_id}",
        content=status,
        names=names,
    )
