"""A client's standing with the site: its secret, its approval, and re-keying.

Approval: a client is `approved`, `pending` (registered while the site requires approval)
or `blocked`. Only an approved client gets policy, manifests and content locations, and only
an approved client's status messages are taken (authorization.py has the table).

Re-keying: the administrator marks a client `rekey_required`; from then on its secret is only
good for `POST /api/client/v1/rekey`, which answers with a new secret. The new secret replaces
the old one the first time the client uses it, so a rekey answer lost on the way leaves the
client with a working secret (it asks again, and the earlier new secret is forgotten).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput, Unauthorized
from quartermaster.core.hashing import sha256_bytes
from quartermaster.site.authorization import (
    BLOCKED,
    CLIENT_STATES,
    REKEY_REQUIRED,
    Credential,
    Principal,
)
from quartermaster.site.clients import get_client
from quartermaster.site.models import Client

SECRET_PREFIX = "qmc_"


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
            raise Unauthorized("unknown client credential",
                               "register the client again: `qm client register --force`")
        client.secret_hash, client.next_secret_hash = digest, None
        client.rekey_required = False
    role = client.approval
    if client.rekey_required and role != BLOCKED:
        role = REKEY_REQUIRED
    return Principal(Credential.CLIENT, client.client_id, role, client_id=client.client_id)


def rekey(session: Session, client_id: str) -> str:
    """A new secret for the client; it becomes the only one when the client first uses it."""
    client = get_client(session, client_id)
    secret, digest = new_secret()
    client.next_secret_hash = digest
    return secret


def set_approval(session: Session, client_id: str, state: str) -> Client:
    if state not in CLIENT_STATES:
        raise InvalidInput(f"approval state {state!r} does not exist",
                           f"use one of {', '.join(CLIENT_STATES)}")
    client = get_client(session, client_id)
    client.approval = state
    return client


def require_rekey(session: Session, client_id: str) -> Client:
    client = get_client(session, client_id)
    client.rekey_required = True
    return client
