"""The status message viewer: filters, newest first, pages that stay exact while messages
arrive (keyset on time and ID), live updates by polling, and each message's full text with
its description and what to do from the catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request, Response

from quartermaster.console.web import (
    PAGE_SIZE,
    get_ctx,
    page_router,
    render,
    signed_in,
)
from quartermaster.core.errors import QMError
from quartermaster.core.status_catalog import CATALOG, Severity
from quartermaster.site.identity.authorization import Principal
from quartermaster.site.lookups import client_filter, hostnames, package_names
from quartermaster.site.models import utcnow
from quartermaster.site.status.messages import query_messages

router = page_router()
COMPONENTS = sorted({m.component for m in CATALOG.values()})
SEVERITIES = [s.value for s in Severity]
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _text() -> Any:
    """A text filter (a new Query each time: FastAPI binds one to one parameter)."""
    return Query("", max_length=100)


def _time(value: str, what: str, problems: list[str]) -> datetime | None:
    """A time from the form: ISO 8601; without a zone it is UTC (the page says so)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{what} {value!r} is not a time; use e.g. 2026-11-25T14:00")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cursor(value: str, problems: list[str]) -> tuple[datetime | None, int | None]:
    time_text, _, id_text = value.partition("|")
    if not value:
        return None, None
    moment = _time(time_text, "page position", problems)
    if moment is None or not id_text.isdigit():
        problems.append("the page position is not valid; start from the newest messages")
        return None, None
    return moment, int(id_text)


def _client(session: Any, text: str, problems: list[str]) -> str | None:
    """The client a filter names, by ID or host name; a name that matches no client or
    several is a problem shown above the list (and the filter matches nothing)."""
    try:
        return client_filter(session, text)
    except QMError as exc:
        problems.append(exc.message)
        return "-"  # no client has this ID: the list is empty, not unfiltered


@router.get("/status/catalog")
def catalog_page(
    request: Request, principal: Annotated[Principal, signed_in("status.read")]
) -> Response:
    """Every status message the site knows: ID, severity, component, text, description and
    what to do; each has an anchor (#m10075) that message lists link to."""
    return render(
        request,
        "catalog.html",
        principal,
        section="status",
        entries=sorted(CATALOG.values(), key=lambda m: m.id),
    )


@router.get("/status")
def status_viewer(
    request: Request,
    principal: Annotated[Principal, signed_in("status.read")],
    message_id: str = _text(),
    severity: str = _text(),
    component: str = _text(),
    client: str = _text(),
    dp: str = _text(),
    package: str = _text(),
    deployment: str = _text(),
    window: str = Query("", alias="range", max_length=10),
    since: str = _text(),
    until: str = _text(),
    before: str = _text(),
    live: str = _text(),
    part: str = Query("", pattern="^(rows)?$"),
) -> Response:
    problems: list[str] = []
    number: int | None = None
    if message_id:
        if message_id.strip().isdigit():
            number = int(message_id)
        else:
            problems.append(f"message ID {message_id!r} is not a number")
    start = _time(since, "from", problems)
    end = _time(until, "to", problems)
    if window in RANGES and start is None:
        start = utcnow() - RANGES[window]
    before_time, before_id = _cursor(before, problems)
    filters: dict[str, Any] = {
        "deployment_id": deployment.strip().upper() or None,
        "package_id": package.strip().upper() or None,
        "message_id": number,
        "severity": severity if severity in SEVERITIES else None,
        "component": component if component in COMPONENTS else None,
        "dp_name": dp.strip() or None,
    }
    with get_ctx(request).db.session() as session:
        filters["client_id"] = _client(session, client, problems)
        rows = query_messages(
            session,
            **filters,
            since=start,
            until=end,
            limit=PAGE_SIZE + 1,
            before_time=before_time,
            before_id=before_id,
        )
        names = hostnames(session, [r["client_id"] for r in rows])
        packages = package_names(session, [r["package_id"] for r in rows])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = f"{rows[-1]['time']}|{rows[-1]['id']}" if more and rows else ""
    context: dict[str, Any] = {
        "rows": rows,
        "names": names,
        "packages": packages,
        "catalog": CATALOG,
        "older": older,
        "first_page": not before,
        "live": live == "on" and not before,
        "problems": problems,
    }
    if part:
        return render(request, "_status_rows.html", principal, **context)
    return render(
        request,
        "status.html",
        principal,
        section="status",
        components=COMPONENTS,
        severities=SEVERITIES,
        ranges=list(RANGES),
        **context,
        f={
            "message_id": message_id,
            "severity": severity,
            "component": component,
            "client": client,
            "dp": dp,
            "package": package,
            "deployment": deployment,
            "range": window,
            "since": since,
            "until": until,
        },
    )
