"""Deployments: the list, one deployment's status (chart, phases, per-client rows with their
last status message), and create, pause, resume and cancel, as the REST API does them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from quartermaster.console.charts import Part
from quartermaster.console.formatting import label
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
from quartermaster.site.deployments import deployments, reports
from quartermaster.site.identity.authorization import Principal

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
    return render(
        request,
        "deployments.html",
        principal,
        section="deployments",
        pager=Pager(offset, rows),
        counts=counts,
        parts=chart_parts,
    )


@router.post("/deployments")
def deployment_create(
    request: Request,
    principal: Annotated[Principal, signed_in("deployment.create")],
    form: Annotated[FormData, Depends(form_data)],
) -> Response:
    package_id, _, program = field(form, "program").partition("|")

    def optional(name: str) -> str | None:
        return field(form, name) or None

    data = body(
        DeploymentBody,
        {
            "package_id": package_id,
            "program": program,
            "collection": field(form, "collection"),
            "available": optional("available"),
            "deadline": optional("deadline"),
            "expires": optional("expires"),
            "rerun": field(form, "rerun") or "if-failed",
            "override_maintenance": field(form, "override_maintenance") == "yes",
            "phases": optional("phases"),
            "success_threshold": optional("success_threshold"),
            "error_threshold": optional("error_threshold"),
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
            available=data.available,
            deadline=data.deadline,
            expires=data.expires,
            rerun=data.rerun,
            override_maintenance=data.override_maintenance,
            phases=data.phases,
            success_threshold=data.success_threshold,
            error_threshold=data.error_threshold,
        )
    request.state.created_object = deployment_id
    return redirect(
        request, f"/console/deployments/{deployment_id}", f"Deployment {deployment_id} created."
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
