"""Distribution points: health (reachable, content state, validation and mismatch reports),
boundaries, disk use, content status per package version, validation history; actions
validate now (dp.validate) and redistribute (on the package routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from quartermaster.console.web import (
    body,
    field,
    form_data,
    get_ctx,
    page_router,
    redirect,
    render,
    signed_in,
)
from quartermaster.site.api.schemas.dps import ValidateBody
from quartermaster.site.deployments import reports
from quartermaster.site.distribution import health, points, validation
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import hostnames, package_names

router = page_router()


@router.get("/dps")
def dp_list(request: Request, principal: Annotated[Principal, signed_in("dp.read")]) -> Response:
    with get_ctx(request).db.session() as session:
        dps = points.list_dps(session)
        found = health.all_dp_health(session, dps)
    rows = [{**dp, "health": found[dp["name"]]} for dp in dps]
    return render(request, "dps.html", principal, section="dps", dps=rows)


@router.get("/dps/{name}")
def dp_page(
    request: Request, name: str, principal: Annotated[Principal, signed_in("dp.read")]
) -> Response:
    with get_ctx(request).db.session() as session:
        points.get_dp(session, name)  # 404 for an unknown DP
        dp = next(d for d in points.list_dps(session) if d["name"] == name)
        state = health.all_dp_health(session, [dp])[name]
        history = reports.dp_validation_history(session, name)
        names = hostnames(session, [m["client_id"] for m in history])
        packages = package_names(session, [c["package_id"] for c in dp["content"]])
        last = health.last_message_per_package(session, name)
    return render(
        request,
        "dp.html",
        principal,
        section="dps",
        dp=dp,
        health=state,
        history=history,
        names=names,
        packages=packages,
        last=last,
    )


@router.post("/dps/{name}/validate")
def dp_validate(
    request: Request,
    name: str,
    principal: Annotated[Principal, signed_in("dp.validate")],
    form: Annotated[FormData, Depends(form_data)],
) -> Response:
    package_id = body(ValidateBody, {"package_id": field(form, "package_id") or None}).package_id
    count = validation.validate_dp(get_ctx(request), name, package_id)
    return redirect(
        request,
        f"/console/dps/{name}",
        f"{name} will re-hash {count} package version(s) at its next poll.",
    )
