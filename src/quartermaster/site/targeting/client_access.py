"""A client's standing with the site: its secret, its approval, and re-keying.

Approval: a client is `approved`, `pending` (registered while the site requires approval)
or `blocked`. Only an approved client gets policy, manifests and content locations, and only
an approved client's status messages are taken (authorization.py has the table).

Notification: `qm client notify` sets a client's `poll_requested`. At the client's next
contact (a policy poll, a status upload, an inventory report) the answer carries
`QM-Poll-After: 60`: the client polls again within that many seconds instead of waiting
for its poll interval. Fetching policy clears the flag, so the hint is given until then.

Re-keying: the administrator marks a client `rekey_required`; from then on its secret is only
good for `POST /api/client/v1/rekey`, which answers with a new secret. The new secret replaces
the old one the first time the client uses it, so a rekey answer lost on the way leaves the
client with a working secret (it asks again, and the earlier new secret is forgotten).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, NotFound, Unauthorized
from quartermaster.core.hashing import sha256_bytes
from quartermaster.site.identity.authorization import (
    APPROVED,
    BLOCKED,
    CLIENT_STATES,
    REKEY_REQUIRED,
    Credential,
    Principal,
    authorize,
)
from quartermaster.site.lookups import find_client, get_collection
from quartermaster.site.models import Client, CollectionMember, Counter, UTCDateTime

SECRET_PREFIX = "qmc_"
NOTIFY_POLL_SECONDS = 60


def new_secret() -> tuple[str, str]:
    """A client secret and the hash the site stores of it."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, sha256_bytes(secret.encode())


def client_principal(session: Session, secret: str) -> Principal:
    """Authenticate a client secret; the first use of a re-keyed secret retires the old one."""
    digest = sha256_bytes(secret.encode())
    client = session.scalar(select(Client).where(Client.secret_hash == digest))
    if client is None:
        client = session.scalar(select(Client).where(Client.next_secret_hash == digest))
        if client is None:
            raise Unauthorized(
                "unknown client credential",
                "register the client again: `qm client register --force`",
            )
        client.secret_hash, client.next_secret_hash = digest, None
        client.rekey_required = False
    role = client.approval
    if client.rekey_required and role != BLOCKED:
        role = REKEY_REQUIRED
    return Principal(
        Credential.CLIENT,
        client.client_id,
        role,
        client_id=client.client_id,
        poll_requested=client.poll_requested,
    )


@dataclass(frozen=True)
class ClientCall:
    """An authenticated, authorized client request, and what its route reads with it."""

    principal: Principal
    serial: int  # the policy serial, read in the same statement
    ip_addresses: list[Any]

    @property
    def client_id(self) -> str:
        return self.principal.name


_CLIENTS = cast(Table, Client.__table__)
_COUNTERS = cast(Table, Counter.__table__)
_SERIAL = select(_COUNTERS.c.value).where(_COUNTERS.c.name == "policy_serial").scalar_subquery()
_RETURNED = (_CLIENTS.c.client_id, _CLIENTS.c.poll_requested, _CLIENTS.c.ip_addresses, _SERIAL)
# Built once: an approved client, not asked to re-key, with its current secret.
_CURRENT = (
    (_CLIENTS.c.secret_hash == bindparam("digest"))
    & (_CLIENTS.c.approval == APPROVED)
    & _CLIENTS.c.rekey_required.is_(False)
)
_READ = select(*_RETURNED).where(_CURRENT)
_POLL = (
    update(_CLIENTS)
    .where(_CURRENT)
    .values(last_policy_request=bindparam("now", type_=UTCDateTime))
    .returning(*_RETURNED)
)


def authenticate(
    session: Session, secret: str, action: str, *, policy_request: datetime | None = None
) -> ClientCall:
    """Authenticate and authorize a client in the route's own transaction.

    The common case, an approved client with its current secret, is one statement: the
    client row (with the time of its policy request, for a poll) and the policy serial
    together. Anything else (unknown secret, the first use of a re-keyed secret, a pending,
    blocked or re-keying client) goes through client_principal() and authorize(), which
    raise the typed 401/403 errors.
    """
    digest = sha256_bytes(secret.encode())
    connection = session.connection()
    if policy_request is not None:
        row = connection.execute(_POLL, {"digest": digest, "now": policy_request}).first()
    else:
        row = connection.execute(_READ, {"digest": digest}).first()
    if row is None:
        principal = client_principal(session, secret)
        authorize(principal, action)
        if policy_request is not None:
            session.execute(
                update(Client)
                .where(Client.client_id == principal.name)
                .values(last_policy_request=policy_request)
            )
        serial = session.execute(select(_SERIAL)).scalar()
        ips = session.scalar(select(Client.ip_addresses).where(Client.client_id == principal.name))
        return ClientCall(principal, int(serial or 0), list(ips or []))
    client_id, poll_requested, ips, serial = row
    principal = Principal(
        Credential.CLIENT,
        client_id,
        APPROVED,
        client_id=client_id,
        poll_requested=bool(poll_requested),
    )
    authorize(principal, action)
    return ClientCall(principal, int(serial or 0), list(ips or []))


def request_poll(session: Session, client_ids: list[str], collection: str | None = None) -> int:
    """Flag clients (named, or members of `collection`) to poll at their next contact."""
    wanted = set(client_ids)
    known = set(session.scalars(select(Client.client_id).where(Client.client_id.in_(wanted))))
    if wanted - known:
        missing = ", ".join(sorted(wanted - known)[:5])
        raise NotFound(f"no client with ID {missing}", "list clients with `qm client list`")
    chosen: ColumnElement[bool] = Client.client_id.in_(wanted)
    if collection is not None:
        members = select(CollectionMember.client_id).where(
            CollectionMember.collection_id == get_collection(session, collection).id
        )
        chosen = or_(chosen, Client.client_id.in_(members))
    result = session.execute(update(Client).where(chosen).values(poll_requested=True))
    return cast(CursorResult[Any], result).rowcount


def rekey(session: Session, client_id: str) -> str:
    """A new secret for the client; it becomes the only one when the client first uses it."""
    client = find_client(session, client_id)
    secret, digest = new_secret()
    client.next_secret_hash = digest
    return secret


def set_approval(session: Session, client_id: str, state: str) -> Client:
    if state not in CLIENT_STATES:
        raise InvalidInput(
            f"approval state {state!r} does not exist", f"use one of {', '.join(CLIENT_STATES)}"
        )
    client = find_client(session, client_id)
    client.approval = state
    return client


def require_rekey(session: Session, client_id: str) -> Client:
    client = find_client(session, client_id)
    client.rekey_required = True
    return client
