"""Deployments: the list, one deployment's status (chart, phases, per-client rows with their
last status message), and create, pause, resume and cancel, as the REST API does them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quartermaster.console.charts import Part
from quartermaster.console.formatting import label
from quartermaster.console.pages.packages import DEPLOY_FIELDS, package_view
from quartermaster.console.web import (
    PAGE_SIZE,
    Pager,
    body,
    field,
    form_data,
    get_ctx,
    page_router,
    redirect,
    render,
    signed_in,
)
from quartermaster.core.status_catalog import ClientState
from quartermaster.site.api.schemas.deployments import DeploymentBody
from quartermaster.site.deployments import deployments, preflight, reports
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import application_names, package_names
from quartermaster.site.models import utcnow
from quartermaster.site.status.program_output import last_outputs

router = page_router()
STATES = [s.value for s in ClientState]
CHART_ORDER = ("succeeded", "in_progress", "failed", "unknown", "requirements_not_met")


def chart_parts(counts: dict[str, int]) -> list[Part]:
    return [Part(s, label(s), counts.get(s, 0)) for s in CHART_ORDER]


@router.get("/deployments")
def deployment_list(
    request: Request,
    principal: Annotated[Principal, signed_in("deployment.read")],
    offset: int = Query(0, ge=0, le=10_000_000),
) -> Response:
    with get_ctx(request).db.session() as session:
        rows = deployments.list_deployments(session, PAGE_SIZE + 1, offset)
        counts = reports.deployment_counts(session, [r["deployment_id"] for r in rows])
        names = _names(session, rows)
        paused = reports.pause_causes(session, [r["deployment_id"] for r in rows])
    return render(
        request,
        "deployments.html",
        principal,
        section="deployments",
        pager=Pager(offset, rows),
        counts=counts,
        parts=chart_parts,
        names=names,
        paused=paused,
    )


def _names(session: Session, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Package and application names of a page of deployments (two queries)."""
    return {
        **package_names(session, [r["package_id"] for r in rows]),
        **application_names(session, [r["app_id"] for r in rows]),
    }


def _deploy_values(source: Mapping[str, Any]) -> dict[str, str]:
    """The deploy form's fields, trimmed (the package and every field of its form)."""
    names = ("package_id", *DEPLOY_FIELDS)
    return {n: str(source.get(n, "")).strip() for n in names if str(source.get(n, "")).strip()}


def _check(request: Request, values: dict[str, str]) -> tuple[dict[str, str], Any]:
    """Each field's mistake, and (when there is none) the summary of what would be created."""
    ctx = get_ctx(request)
    with ctx.db.session() as session:
        errors = preflight.check_fields(session, values)
        if errors:
            return errors, None
        now = utcnow()
        start, due, _ = deployments.parse_schedule(
            values.get("available"), values.get("deadline"), values.get("expires"), now
        )
        summary = preflight.preflight(
            session,
            ctx.site_code,
            values["package_id"],
            values["program"],
            values["collection"],
            available=start,
            deadline=due,
            plan=deployments.phase_plan(
                values.get("phases"),
                _int(values.get("success_threshold")),
                _int(values.get("error_threshold")),
            ),
            now=now,
        )
    return {}, summary


def _int(value: str | None) -> int | None:
    return int(value) if value else None


@router.get("/deployments/review")
def deployment_review(
    request: Request, principal: Annotated[Principal, signed_in("deployment.create")]
) -> Response:
    """The summary an administrator confirms, or the form again with each mistake beside
    its field and every value kept. Creates nothing."""
    values = _deploy_values(request.query_params)
    if not values.get("package_id"):
        return redirect(request, "/console/packages", "Choose the package to deploy first.")
    errors, summary = _check(request, values)
    if errors:
        return package_view(request, principal, values["package_id"], values, errors, 422)
    change = urlencode({k: v for k, v in values.items() if k != "package_id"})
    return render(
        request,
        "deployment_review.html",
        principal,
        section="deployments",
        pf=summary,
        values=values,
        change_url=f"/console/packages/{values['package_id']}?{change}#deploy",
    )


@router.post("/deployments")
def deployment_create(
    request: Request,
    principal: Annotated[Principal, signed_in("deployment.create")],
    form: Annotated[FormData, Depends(form_data)],
) -> Response:
    """Creates the deployment confirmed on the summary; without the confirmation, shows it."""
    values = _deploy_values(form)
    if field(form, "confirmed") != "yes":
        return RedirectResponse(f"/console/deployments/review?{urlencode(values)}", status_code=303)
    errors, _ = _check(request, values)
    if errors:
        return package_view(request, principal, values.get("package_id", ""), values, errors, 422)
    data = body(
        DeploymentBody,
        {
            "package_id": values["package_id"],
            "program": values["program"],
            "collection": values["collection"],
            "available": values.get("available"),
            "deadline": values.get("deadline"),
            "expires": values.get("expires"),
            "rerun": values.get("rerun") or "if-failed",
            "override_maintenance": values.get("override_maintenance") == "yes",
            "phases": values.get("phases"),
            "success_threshold": values.get("success_threshold"),
            "error_threshold": values.get("error_threshold"),
        },
    )
    ctx = get_ctx(request)
    with ctx.db.session() as session:
        deployment_id = deployments.create_from_request(
            session,
            ctx.site_code,
            data.package_id,
            data.program,
            data.collection,
            **data.schedule(),
        )
        warnings = preflight.of_deployment(session, ctx.site_code, deployment_id).warnings
    request.state.created_object = deployment_id
    message = f"Deployment {deployment_id} created."
    if warnings:
        message += " Warning: " + " Warning: ".join(warnings)
    return redirect(
        request, f"/console/deployments/{deployment_id}", message, "warn" if warnings else "ok"
    )


@router.get("/deployments/{deployment_id}")
def deployment_page(
    request: Request,
    deployment_id: str,
    principal: Annotated[Principal, signed_in("deployment.read")],
    state: str = Query("", max_length=30),
    after: str = Query("", max_length=64),
    before: str = Query("", max_length=64),
    part: str = Query("", pattern="^(summary)?$"),
) -> Response:
    """The whole page, or (`part=summary`) the chart and phases that refresh themselves.
    Client rows page by keyset (`after` / `before` a client ID): every page is as fast."""
    state = state if state in STATES else ""
    with get_ctx(request).db.session() as session:
        status = deployments.deployment_status(session, deployment_id, limit=0)
        total = status["counts"].get(state, 0) if state else status["targeted"]
        rows = (
            []
            if part
            else deployments.client_page(
                session,
                deployment_id,
                state=state or None,
                limit=PAGE_SIZE + 1,
                after=after or None,
                before=before or None,
                matching=total,
            )
        )
        outputs = last_outputs(session, status["deployment_id"], [r["client_id"] for r in rows])
        names = _names(session, [status])
        paused = reports.pause_causes(session, [status["deployment_id"]])
    return render(
        request,
        "_deployment_summary.html" if part else "deployment.html",
        principal,
        section="deployments",
        d=status,
        state=state,
        states=STATES,
        parts=chart_parts(status["counts"]),
        total=total,
        pager=KeysetPager(rows, backwards=bool(before and not after), cursor=bool(after or before)),
        outputs=outputs,
        names=names,
        paused=paused,
    )


class KeysetPager:
    """Previous / next links of a keyset page fetched with one row more than it shows."""

    def __init__(self, rows: list[dict[str, str]], backwards: bool, cursor: bool) -> None:
        more = len(rows) > PAGE_SIZE
        self.rows = (rows[1:] if backwards else rows[:PAGE_SIZE]) if more else rows
        self.next_after = self.rows[-1]["client_id"] if self.rows and (backwards or more) else None
        self.previous_before = (
            self.rows[0]["client_id"]
            if self.rows and ((backwards and more) or (not backwards and cursor))
            else None
        )


def _control(
    request: Request, deployment_id: str, action: Callable[[Session, str], None], done: str
) -> Response:
    with get_ctx(request).db.session() as session:
        action(session, deployment_id)
    return redirect(
        request, f"/console/deployments/{deployment_id}", f"Deployment {deployment_id} {done}."
    )


@router.post("/deployments/{deployment_id}/pause")
def deployment_pause(
    request: Request,
    deployment_id: str,
    principal: Annotated[Principal, signed_in("deployment.update")],
) -> Response:
    return _control(request, deployment_id, deployments.pause_deployment, "paused")


@router.post("/deployments/{deployment_id}/resume")
def deployment_resume(
    request: Request,
    deployment_id: str,
    principal: Annotated[Principal, signed_in("deployment.update")],
) -> Response:
    return _control(request, deployment_id, deployments.resume_deployment, "resumed")


@router.post("/deployments/{deployment_id}/cancel")
def deployment_cancel(
    request: Request,
    deployment_id: str,
    principal: Annotated[Principal, signed_in("deployment.update")],
) -> Response:
    return _control(request, deployment_id, deployments.cancel_deployment, "cancelled")
