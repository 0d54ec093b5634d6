"""Packages: the list, one package's versions, programs and copies on DPs, and the actions
the REST API offers for them (create, update, distribute, remove from a DP)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from starlette.datastructures import FormData

from quartermaster.console.web import (
    PAGE_SIZE,
    Pager,
    body,
    field,
    fields,
    form_data,
    get_ctx,
    page_router,
    redirect,
    render,
    signed_in,
)
from quartermaster.site.api.schemas.packages import DPNames, OneDP, PackageBody
from quartermaster.site.content import packages
from quartermaster.site.deployments import approvals
from quartermaster.site.deployments.deployments import RERUN
from quartermaster.site.distribution import points
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import collection_names

router = page_router()
Form = Annotated[FormData, Depends(form_data)]


@router.get("/packages")
def package_list(
    request: Request,
    principal: Annotated[Principal, signed_in("package.read")],
    search: str = Query("", max_length=200),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> Response:
    rows = packages.list_packages(get_ctx(request), search.strip(), PAGE_SIZE + 1, offset)
    return render(
        request,
        "packages.html",
        principal,
        section="packages",
        search=search,
        pager=Pager(offset, rows),
    )


@router.post("/packages")
def package_create(
    request: Request, principal: Annotated[Principal, signed_in("package.create")], form: Form
) -> Response:
    """Snapshot a folder on the site server as version 1 (optionally with one program)."""
    data: dict[str, Any] = {
        "name": field(form, "name"),
        "source": field(form, "source"),
        "manufacturer": field(form, "manufacturer"),
        "version_label": field(form, "version_label"),
        "programs": [],
    }
    if field(form, "program_name") or field(form, "program_command"):
        data["programs"].append(
            {"name": field(form, "program_name"), "command": field(form, "program_command")}
        )
    request_body = body(PackageBody, data)
    warnings = packages.same_name_warnings(
        get_ctx(request), request_body.name, request_body.version_label
    )
    created = packages.create_package(
        get_ctx(request),
        request_body.name,
        request_body.source,
        [p.spec() for p in request_body.programs],
        request_body.manufacturer,
        request_body.version_label,
    )
    package_id = created["package_id"]
    request.state.created_object = package_id
    return redirect(
        request,
        f"/console/packages/{package_id}",
        " ".join([f"Package {package_id} created: version 1 published.", *warnings]),
        "warn" if warnings else "ok",
    )


@router.get("/packages/{package_id}")
def package_page(
    request: Request, package_id: str, principal: Annotated[Principal, signed_in("package.read")]
) -> Response:
    """The package; a deploy form's values in the query (from "Change" on the summary) open
    the form with them."""
    values = {k: v for k, v in request.query_params.items() if k in DEPLOY_FIELDS}
    return package_view(request, principal, package_id, values)


DEPLOY_FIELDS = (
    "program",
    "collection",
    "available",
    "deadline",
    "expires",
    "rerun",
    "override_maintenance",
    "phases",
    "success_threshold",
    "error_threshold",
)


def package_view(
    request: Request,
    principal: Principal,
    package_id: str,
    deploy_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The package page, with the deploy form open and filled when `deploy_form` is given
    and each of `errors` shown next to its field."""
    ctx = get_ctx(request)
    package = packages.show_package(ctx, package_id)
    package["approvals"] = approvals.package_approvals(ctx, package["package_id"])
    with ctx.db.session() as session:
        dp_names = [dp["name"] for dp in points.list_dps(session) if dp["state"] == "active"]
        collections = collection_names(session)
    carried = {row["dp"] for row in package["distribution"]}
    return render(
        request,
        "package.html",
        principal,
        section="packages",
        status=status,
        package=package,
        other_dps=[n for n in dp_names if n not in carried],
        carrying=sorted(carried),
        collections=collections,
        reruns=RERUN,
        form=deploy_form or {},
        errors=errors or {},
    )


@router.post("/packages/{package_id}/update")
def package_update(
    request: Request, package_id: str, principal: Annotated[Principal, signed_in("package.update")]
) -> Response:
    result = packages.update_package(get_ctx(request), package_id)
    message = (
        f"Version {result['source_version']} published."
        if result["changed"]
        else "The source folder has not changed since the last version: nothing published."
    )
    return redirect(request, f"/console/packages/{package_id}", message)


@router.post("/packages/{package_id}/distribute")
def package_distribute(
    request: Request,
    package_id: str,
    principal: Annotated[Principal, signed_in("package.distribute")],
    form: Form,
) -> Response:
    names = body(DPNames, {"dps": fields(form, "dps")}).dps
    packages.distribute_package(get_ctx(request), package_id, names)
    return redirect(
        request, f"/console/packages/{package_id}", f"Distributing to {', '.join(names)}."
    )


@router.post("/packages/{package_id}/remove-dp")
def package_remove_dp(
    request: Request,
    package_id: str,
    principal: Annotated[Principal, signed_in("package.remove_dp")],
    form: Form,
) -> Response:
    names = body(DPNames, {"dps": fields(form, "dps")}).dps
    packages.remove_package_from_dps(get_ctx(request), package_id, names)
    return redirect(request, f"/console/packages/{package_id}", f"Removed from {', '.join(names)}.")


@router.post("/packages/{package_id}/redistribute")
def package_redistribute(
    request: Request,
    package_id: str,
    principal: Annotated[Principal, signed_in("package.distribute")],
    form: Form,
) -> Response:
    dp = body(OneDP, {"dp": field(form, "dp")}).dp
    packages.redistribute(get_ctx(request), package_id, dp)
    return redirect(
        request,
        field(form, "back_to")
        if field(form, "back_to") in (f"/console/dps/{dp}", f"/console/packages/{package_id}")
        else f"/console/packages/{package_id}",
        f"{dp} re-checks {package_id} and fetches again what is missing or damaged.",
    )
