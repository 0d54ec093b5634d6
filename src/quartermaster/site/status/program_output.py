"""Program output at the site: the tail a client sends with a failure, bounded twice.

A client sends at most 64 KiB of a failed program's output with 10006 or 10070. The site
keeps at most `program_output_message_bytes` of it per message (the end, where the reason
usually is) and at most `program_output_total_bytes` over all messages, deleting the oldest
first. The message itself is never deleted with its output: `output_tail` is then null and
`output_removed` true.

`output_for_message` and `last_output` are what the API, the CLI and the console show.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from quartermaster.site.models import Client, ProgramOutput, StatusMessageRow
from quartermaster.site.settings import get_settings

MESSAGE_CAP = 64 * 1024
TOTAL_CAP = 256 * 1024 * 1024
FIELD = "output_tail"  # the key in a client's status message and in the API's answer

_OUTPUTS = cast(Table, ProgramOutput.__table__)


def clip(text: str, limit: int) -> tuple[str, int, bool]:
    """The last `limit` UTF-8 bytes of `text` (whole characters), their size, and whether
    anything was cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text, len(data), False
    kept = data[len(data) - limit :].decode("utf-8", errors="ignore")
    return kept, len(kept.encode("utf-8")), True


def store_outputs(session: Session, rows: list[dict[str, Any]]) -> None:
    """Keep the output of the batch's new messages (`rows` carry it under FIELD), then
    delete the oldest outputs until the total is within its cap."""
    wanted = [r for r in rows if isinstance(r.get(FIELD), str) and r[FIELD]]
    if not wanted:
        return
    settings = get_settings(session)
    message_cap = int(settings["program_output_message_bytes"])
    values = []
    for row in wanted:
        text, size, cut = clip(row[FIELD], message_cap)
        values.append(
            {
                "message_uid": row["uid"],
                "client_id": row["client_id"],
                "deployment_id": row["deployment_id"],
                "size": size,
                "truncated": cut,
                "output": text,
                "received": row["received"],
            }
        )
    connection = session.connection()
    connection.execute(insert(_OUTPUTS), values)
    enforce_total(session, int(settings["program_output_total_bytes"]))


def enforce_total(session: Session, cap: int) -> int:
    """Delete the oldest outputs until their sizes add up to at most `cap`; how many went."""
    connection = session.connection()
    total = connection.execute(select(func.coalesce(func.sum(_OUTPUTS.c.size), 0))).scalar_one()
    excess = int(total) - cap
    if excess <= 0:
        return 0
    doomed: list[int] = []
    last_id = 0
    while excess > 0:
        page = connection.execute(
            select(_OUTPUTS.c.id, _OUTPUTS.c.size)
            .where(_OUTPUTS.c.id > last_id)
            .order_by(_OUTPUTS.c.id)
            .limit(500)
        ).all()
        if not page:
            break
        for output_id, size in page:
            if excess <= 0:
                break
            doomed.append(output_id)
            excess -= size
            last_id = output_id
    for start in range(0, len(doomed), 500):
        connection.execute(delete(_OUTPUTS).where(_OUTPUTS.c.id.in_(doomed[start : start + 500])))
    return len(doomed)


def outputs_for(session: Session, uids: list[str]) -> dict[str, ProgramOutput]:
    """The outputs kept for these message uids."""
    if not uids:
        return {}
    found = session.scalars(select(ProgramOutput).where(ProgramOutput.message_uid.in_(uids)))
    return {row.message_uid: row for row in found}


def output_fields(message: StatusMessageRow, kept: ProgramOutput | None) -> dict[str, Any]:
    """What a message's JSON says about its output: only messages that carried one."""
    if kept is not None:
        return {FIELD: kept.output, "output_truncated": kept.truncated, "output_removed": False}
    if message.properties.get("has_output"):
        return {FIELD: None, "output_truncated": False, "output_removed": True}
    return {}


def output_for_message(session: Session, message_row_id: int) -> dict[str, Any] | None:
    """The output sent with one status message (by its row ID), for the console's message
    details: {output_tail, output_truncated, output_removed}, or None if it carried none."""
    message = session.get(StatusMessageRow, message_row_id)
    if message is None:
        return None
    fields = output_fields(message, outputs_for(session, [message.uid]).get(message.uid))
    return fields or None


def last_output(session: Session, deployment_id: str, client_id: str) -> dict[str, Any] | None:
    """The newest program output of one client for one deployment, with the message that
    carried it: {message_id, time, text, output_tail, output_truncated}, or None."""
    kept = session.scalars(
        select(ProgramOutput)
        .where(ProgramOutput.deployment_id == deployment_id, ProgramOutput.client_id == client_id)
        .order_by(ProgramOutput.id.desc())
        .limit(1)
    ).first()
    if kept is None:
        return None
    message = session.scalars(
        select(StatusMessageRow).where(StatusMessageRow.uid == kept.message_uid)
    ).first()
    return {
        "message_id": message.message_id if message else None,
        "time": message.time.isoformat() if message else None,
        "text": message.text if message else "",
        FIELD: kept.output,
        "output_truncated": kept.truncated,
    }


def find_client(session: Session, deployment_client: str) -> str | None:
    """A client ID from an ID or a host name (the first registered, when names repeat)."""
    if session.get(Client, deployment_client) is not None:
        return deployment_client
    return session.scalars(
        select(Client.client_id).where(Client.hostname == deployment_client).limit(1)
    ).first()


def last_outputs(
    session: Session, deployment_id: str, client_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The newest program output of each of a page's clients in one deployment (one
    query): {client_id: {output_tail, output_truncated, message_uid}}."""
    if not client_ids:
        return {}
    rows = session.scalars(
        select(ProgramOutput)
        .where(
            ProgramOutput.deployment_id == deployment_id,
            ProgramOutput.client_id.in_(client_ids),
        )
        .order_by(ProgramOutput.id)
    )
    newest: dict[str, dict[str, Any]] = {}
    for kept in rows:  # ascending: the newest of each client is written last
        newest[kept.client_id] = {
            FIELD: kept.output,
            "output_truncated": kept.truncated,
            "message_uid": kept.message_uid,
        }
    return newest
