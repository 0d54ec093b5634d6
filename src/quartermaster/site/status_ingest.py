"""Status message ingestion: exactly once per client-made uid, rolled up as it arrives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput
from quartermaster.core.status_catalog import CATALOG
from quartermaster.site import distribution
from quartermaster.site.deployments import reevaluate_rollouts
from quartermaster.site.models import Client, DeploymentClient, StatusMessageRow, utcnow

MAX_BATCH = 1000


def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"status message time {value!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"status message time {value!r} has no time zone", "send UTC with Z")
    return parsed


def _row(client: Client, message: dict[str, Any]) -> dict[str, Any]:
    uid, message_id = message.get("uid"), message.get("message_id")
    if not isinstance(uid, str) or not 8 <= len(uid) <= 64:
        raise InvalidInput("every status message needs a uid of 8 to 64 characters")
    if not isinstance(message_id, int) or message_id not in CATALOG:
        raise InvalidInput(f"status message ID {message_id!r} is not in the catalog")
    strings = message.get("insertion_strings", [])
    if not isinstance(strings, list) or len(strings) > 20:
        raise InvalidInput("insertion_strings must be a list of at most 20 strings")
    strings = [str(s)[:1000] for s in strings]
    entry = CATALOG[message_id]
    properties = message.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be an object")
    return {
        "uid": f"{client.client_id}:{uid}",
        "message_id": message_id,
        "severity": entry.severity.value,
        "component": entry.component,
        "client_id": client.client_id,
        "dp_name": str(message.get("dp") or "")[:100],
        "deployment_id": message.get("deployment_id") or None,
        "package_id": message.get("package_id") or None,
        "insertion_strings": strings,
        "properties": properties,
        "text": entry.render(strings),
        "time": _parse_time(message.get("time")),
        "received": utcnow(),
    }


def ingest(session: Session, client: Client, messages: list[dict[str, Any]]) -> dict[str, int]:
    if len(messages) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} status messages per request")
    rows = [_row(client, m) for m in messages]
    if not rows:
        return {"accepted": 0, "duplicates": 0}
    dialect = session.get_bind().dialect.name
    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(StatusMessageRow)
    stmt = stmt.on_conflict_do_nothing(index_elements=["uid"]).returning(StatusMessageRow.uid)
    inserted = set(session.scalars(stmt, rows).all())
    fresh = [r for r in rows if r["uid"] in inserted]
    _lock_roll_ups(session, client, fresh)
    for row in sorted(fresh, key=lambda r: r["time"]):
        _roll_up(session, client, row)
    reevaluate_rollouts(session, {r["deployment_id"] for r in fresh if r["deployment_id"]})
    client.last_status_time = utcnow()
    return {"accepted": len(fresh), "duplicates": len(rows) - len(fresh)}


def _lock_roll_ups(session: Session, client: Client, fresh: list[dict[str, Any]]) -> None:
    """Lock this client's roll-up rows of the batch once, in key order, before applying it.

    With several site processes two batches of one client may race; the row lock makes the
    newer message win whichever commits last. Locking once (not per message) matters on
    PostgreSQL: a row updated twice in one transaction makes its foreign-key check run and
    share-lock the deployment row, which deadlocks against the rollout's row lock.
    """
    deployment_ids = sorted({r["deployment_id"] for r in fresh if r["deployment_id"]})
    if deployment_ids:
        session.scalars(
            select(DeploymentClient)
            .where(
                DeploymentClient.client_id == client.client_id,
                DeploymentClient.deployment_id.in_(deployment_ids),
            )
            .order_by(DeploymentClient.deployment_id)
            .with_for_update()
        ).all()


def _roll_up(session: Session, client: Client, row: dict[str, Any]) -> None:
    if row["message_id"] == 10075 and row["dp_name"]:
        distribution.report_mismatch(
            session,
            row["dp_name"],
            str(row["properties"].get("package_hash", "")),
            client.client_id,
        )
    state = CATALOG[row["message_id"]].state
    if state is None or not row["deployment_id"]:
        return
    target = session.get(DeploymentClient, (row["deployment_id"], client.client_id))
    if target is None:
        return
    if target.last_message_time is not None and target.last_message_time > row["time"]:
        return
    target.state = state.value
    target.last_message_id = row["message_id"]
    target.last_message_time = row["time"]
    target.detail = row["text"]
    version = row["properties"].get("source_version")
    if isinstance(version, int):
        target.source_version = version


def query_messages(
    session: Session,
    *,
    deployment_id: str | None = None,
    client_id: str | None = None,
    package_id: str | None = None,
    message_id: int | None = None,
    severity: str | None = None,
    dp_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
    component: str | None = None,
    before_time: datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first. Page with `before_id`, or, for pages that stay exact when messages
    arrive late with older times, with `before_time` and `before_id` of the last row shown
    (the rows after it in (time, id) order)."""
    query = select(StatusMessageRow).order_by(
        StatusMessageRow.time.desc(), StatusMessageRow.id.desc()
    )
    filters = {
        StatusMessageRow.deployment_id: deployment_id,
        StatusMessageRow.client_id: client_id,
        StatusMessageRow.package_id: package_id,
        StatusMessageRow.message_id: message_id,
        StatusMessageRow.severity: severity,
        StatusMessageRow.dp_name: dp_name,
        StatusMessageRow.component: component,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(StatusMessageRow.time >= since)
    if until is not None:
        query = query.where(StatusMessageRow.time < until)
    if before_time is not None:
        query = query.where(
            StatusMessageRow.time <= before_time,
            or_(
                StatusMessageRow.time < before_time,
                and_(StatusMessageRow.time == before_time, StatusMessageRow.id < (before_id or 0)),
            ),
        )
    elif before_id is not None:
        query = query.where(StatusMessageRow.id < before_id)
    return [message_dict(m) for m in session.scalars(query.limit(min(limit, 1000)))]


def message_dict(m: StatusMessageRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "message_id": m.message_id,
        "severity": m.severity,
        "component": m.component,
        "client_id": m.client_id,
        "dp": m.dp_name,
        "deployment_id": m.deployment_id,
        "package_id": m.package_id,
        "insertion_strings": m.insertion_strings,
        "properties": m.properties,
        "text": m.text,
        "time": m.time.isoformat(),
        "received": m.received.isoformat(),
    }
