"""Clients: the list with search, and one client's properties, collections, deployments and
recent status messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

from quartermaster.console.web import (
    PAGE_SIZE,
    Pager,
    get_ctx,
    page_router,
    render,
    signed_in,
)
from quartermaster.core.status_catalog import CATALOG
from quartermaster.site.deployments import reports
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import AmbiguousName, find_client, package_names
from quartermaster.site.status.messages import query_messages
from quartermaster.site.targeting.clients import client_summary, list_clients

router = page_router()
APPROVALS = ("approved", "pending", "blocked")


@router.get("/clients")
def client_list(
    request: Request,
    principal: Annotated[Principal, signed_in("client.read")],
    search: str = Query("", max_length=200),
    approval: str = Query("", max_length=20),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> Response:
    approval = approval if approval in APPROVALS else ""
    with get_ctx(request).db.session() as session:
        rows = list_clients(session, search.strip(), PAGE_SIZE + 1, offset, approval or None)
    return render(
        request,
        "clients.html",
        principal,
        section="clients",
        search=search,
        approval=approval,
        approvals=APPROVALS,
        pager=Pager(offset, rows),
    )


@router.get("/clients/{client_id}")
def client_page(
    request: Request, client_id: str, principal: Annotated[Principal, signed_in("client.read")]
) -> Response:
    with get_ctx(request).db.session() as session:
        try:
            client = client_summary(find_client(session, client_id))  # a GUID or a host name
        except AmbiguousName as exc:
            return render(
                request,
                "client_choice.html",
                principal,
                section="clients",
                status=exc.http_status,
                name=client_id,
                message=exc.message,
                candidates=exc.candidates,
            )
        collections = reports.client_collections(session, client["client_id"])
        targeted = reports.client_deployments(session, client["client_id"])
        messages = query_messages(session, client_id=client["client_id"], limit=25)
        packages = package_names(session, [d["package_id"] for d in targeted])
    return render(
        request,
        "client.html",
        principal,
        section="clients",
        client=client,
        collections=collections,
        deployments=targeted,
        messages=messages,
        packages=packages,
        catalog=CATALOG,
    )
