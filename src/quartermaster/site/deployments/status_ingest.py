"""Status message ingestion: exactly once per client-made uid, rolled up as it arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput
from quartermaster.core.status_catalog import CATALOG
from quartermaster.site.deployments.deployments import reevaluate_rollouts
from quartermaster.site.distribution import peers, validation
from quartermaster.site.json_limits import STATUS_PROPERTIES, check_json
from quartermaster.site.models import (
    Client,
    Deployment,
    DeploymentClient,
    StatusMessageRow,
    UTCDateTime,
    utcnow,
)
from quartermaster.site.status.program_output import FIELD as OUTPUT
from quartermaster.site.status.program_output import store_outputs

MAX_BATCH = 1000
MISMATCH = 10075  # a client found a blob on a DP that does not match its hash

_MESSAGES = cast(Table, StatusMessageRow.__table__)
_CLIENTS = cast(Table, Client.__table__)
# One statement per batch; the uids it returns are the messages not seen before.
_INSERT = {
    name: insert(_MESSAGES)
    .on_conflict_do_nothing(index_elements=["uid"])
    .returning(_MESSAGES.c.uid)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_LAST_STATUS = (
    update(_CLIENTS)
    .where(_CLIENTS.c.client_id == bindparam("b_client_id"))
    .values(last_status_time=bindparam("now", type_=UTCDateTime))
)


# A client's clock may be wrong; a time outside this window around the site's clock is
# replaced by the time the site received the message (the client's is kept in properties):
# a message from the year 9999 would otherwise head every list for good.
CLOCK_AHEAD = timedelta(days=1)
CLOCK_BEHIND = timedelta(days=366)


def _parse_time(value: Any, received: datetime) -> tuple[datetime, bool]:
    """The message's time, and whether it was clamped to `received`."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"status message time {value!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"status message time {value!r} has no time zone", "send UTC with Z")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00: before the year 1 in UTC
        return received, True
    if not received - CLOCK_BEHIND <= parsed <= received + CLOCK_AHEAD:
        return received, True
    return parsed, False


def _optional_id(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key) or None
    if value is not None and (not isinstance(value, str) or len(value) > 64 or "\x00" in value):
        raise InvalidInput(f"status message {key} must be text of at most 64 characters")
    return value


def _row(client_id: str, message: dict[str, Any], received: datetime) -> dict[str, Any]:
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
    properties = check_json(message.get("properties") or {}, STATUS_PROPERTIES)
    time, clamped = _parse_time(message.get("time"), received)
    if clamped:
        properties = {**properties, "client_time": str(message.get("time"))[:64]}
    output = message.get(OUTPUT)
    if output is not None and not isinstance(output, str):
        raise InvalidInput(f"{OUTPUT} must be a string")
    if output:
        properties = {**properties, "has_output": True}
    return {
        "uid": f"{client_id}:{uid}",
        "message_id": message_id,
        "severity": entry.severity.value,
        "component": entry.component,
        "client_id": client_id,
        "dp_name": str(message.get("dp") or "")[:100],
        "deployment_id": _optional_id(message, "deployment_id"),
        "package_id": _optional_id(message, "package_id"),
        "insertion_strings": strings,
        "properties": properties,
        "text": entry.render(strings),
        "time": time,
        "received": received,
        OUTPUT: output or "",
    }


def ingest(
    session: Session, client: Client | str, messages: list[dict[str, Any]], address: str = ""
) -> dict[str, int]:
    """Store the batch's new messages (by uid) and roll them up, in the caller's transaction.

    Core statements only, a fixed number per batch whatever its size: the insert (which
    tells the new uids apart), one locking read and one update per deployment the batch
    moves, and the client's last status time.
    """
    client_id = client if isinstance(client, str) else client.client_id
    if len(messages) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} status messages per request")
    now = utcnow()
    rows = [_row(client_id, m, now) for m in messages]
    if not rows:
        return {"accepted": 0, "duplicates": 0}
    if len({r["uid"] for r in rows}) != len(rows):  # the same uid twice in one batch
        rows = list({r["uid"]: r for r in reversed(rows)}.values())[::-1]
    connection = session.connection()
    columns = [{k: v for k, v in r.items() if k != OUTPUT} for r in rows]
    inserted = set(connection.execute(_INSERT[connection.dialect.name], columns).scalars())
    fresh = [r for r in rows if r["uid"] in inserted]
    store_outputs(session, fresh)
    budget: int | None = None  # mismatch reports this client may still have acted on
    for row in fresh:
        if row["message_id"] == MISMATCH and row["dp_name"].startswith(peers.PEER_PREFIX):
            peers.report_bad_peer(
                session,
                row["dp_name"],
                client_id,
                str(row["properties"].get("package_hash", "")),
                address,
            )
        elif row["message_id"] == MISMATCH and row["dp_name"]:
            if budget is None:
                budget = validation.mismatch_budget(session, client_id, now)
            if budget > 0 and validation.report_mismatch(
                session,
                row["dp_name"],
                str(row["properties"].get("package_hash", "")),
                client_id,
                [address] if address else [],
            ):
                budget -= 1
    _roll_up(session, client_id, fresh)
    reevaluate_rollouts(session, _phased(session, fresh))
    connection.execute(_LAST_STATUS, {"b_client_id": client_id, "now": now})
    return {"accepted": len(fresh), "duplicates": len(messages) - len(fresh)}


def _roll_up(session: Session, client_id: str, fresh: list[dict[str, Any]]) -> None:
    """Apply the batch to this client's roll-up rows: a message newer than (or as new as) the
    row's last one sets its state, in time order, as if applied one by one.

    The rows are locked once, in key order, with the read. With several site processes two
    batches of one client may race; the lock makes the newer message win whichever commits
    last. Locking and updating each row once matters on PostgreSQL: a row updated twice in
    one transaction makes its foreign-key check run and share-lock the deployment row,
    which deadlocks against the rollout's row lock.
    """
    moving: dict[str, list[dict[str, Any]]] = {}
    for row in fresh:
        if CATALOG[row["message_id"]].state is not None and row["deployment_id"]:
            moving.setdefault(row["deployment_id"], []).append(row)
    if not moving:
        return
    connection = session.connection()
    current = {
        deployment_id: (last_time, version)
        for deployment_id, last_time, version in connection.execute(
            _LOCK_ROLL_UPS, {"client_id": client_id, "deployment_ids": sorted(moving)}
        )
    }
    for deployment_id in sorted(current):
        last_time, version = current[deployment_id]
        last: dict[str, Any] | None = None
        for row in sorted(moving[deployment_id], key=lambda r: r["time"]):
            if last_time is not None and last_time > row["time"]:  # both aware (UTCDateTime)
                continue
            last_time, last = row["time"], row
            new_version = row["properties"].get("source_version")
            if isinstance(new_version, int):
                version = new_version
        if last is None:
            continue
        state = CATALOG[last["message_id"]].state_for(last["properties"])
        if state is None:  # only messages that move a state are in `moving`
            continue
        connection.execute(
            _UPDATE_ROLL_UP,
            {
                **_evaluation(last),
                "b_deployment_id": deployment_id,
                "b_client_id": client_id,
                "state": state.value,
                "last_message_id": last["message_id"],
                "last_message_time": last["time"],
                "detail": last["text"],
                "source_version": version,
            },
        )


def _evaluation(row: dict[str, Any]) -> dict[str, Any]:
    """An application message's detection evidence and when it was evaluated (else none)."""
    evidence = row["properties"].get("evidence")
    if not isinstance(evidence, list):
        return {}
    return {"evidence": evidence[:20], "last_evaluated": row["time"]}


_ROLL_UPS = cast(Table, DeploymentClient.__table__)
_LOCK_ROLL_UPS = (
    select(_ROLL_UPS.c.deployment_id, _ROLL_UPS.c.last_message_time, _ROLL_UPS.c.source_version)
    .where(
        _ROLL_UPS.c.client_id == bindparam("client_id"),
        _ROLL_UPS.c.deployment_id.in_(bindparam("deployment_ids", expanding=True)),
    )
    .order_by(_ROLL_UPS.c.deployment_id)
    .with_for_update()
)
_UPDATE_ROLL_UP = update(_ROLL_UPS).where(
    _ROLL_UPS.c.deployment_id == bindparam("b_deployment_id"),
    _ROLL_UPS.c.client_id == bindparam("b_client_id"),
)

# Whether a deployment has phases is fixed when it is created, so it is kept per process.
_PHASED: dict[str, bool] = {}


def _phased(session: Session, fresh: list[dict[str, Any]]) -> list[str]:
    """Deployments of the batch that have phases (only their rollouts can move)."""
    wanted = {r["deployment_id"] for r in fresh if r["deployment_id"]}
    unknown = wanted - _PHASED.keys()
    if unknown:  # the plan itself: "no phases" is stored as JSON null, not SQL NULL
        for deployment_id, plan in session.execute(
            select(Deployment.deployment_id, Deployment.phase_plan).where(
                Deployment.deployment_id.in_(sorted(unknown))
            )
        ):
            _PHASED[deployment_id] = plan is not None
    return sorted(d for d in wanted if _PHASED.get(d))
