"""Client registration: the client's row, the site's 3001 message and its collections by
rule, in one transaction. Above clients.py and membership.py, which it uses both."""

from __future__ import annotations

import secrets
from typing import Any, cast

from sqlalchemy import Table, exists, insert, select

from quartermaster.core.hashing import token_hash
from quartermaster.core.ids import new_client_id
from quartermaster.site.context import SiteContext
from quartermaster.site.models import (
    Client,
    CollectionRule,
    SiteSetting,
    StatusMessageRow,
    utcnow,
)
from quartermaster.site.settings import DEFAULTS
from quartermaster.site.status.site_messages import status_row
from quartermaster.site.targeting import membership
from quartermaster.site.targeting.clients import check_facts

_CLIENTS = cast(Table, Client.__table__)
_MESSAGES = cast(Table, StatusMessageRow.__table__)
_SETTINGS = cast(Table, SiteSetting.__table__)
_RULES = cast(Table, CollectionRule.__table__)
_INSERT_CLIENT = insert(_CLIENTS)
_INSERT_MESSAGE = insert(_MESSAGES)
# What a registration reads, in one statement: the require_approval setting (settings.py;
# NULL when it was never set) and whether any collection has a query rule.
_REGISTRATION = select(
    select(_SETTINGS.c.value).where(_SETTINGS.c.name == "require_approval").scalar_subquery(),
    exists(select(_RULES.c.id)),
)


def register(ctx: SiteContext, facts: dict[str, Any]) -> dict[str, Any]:
    """Register a client: its row, the site's 3001 message and its rule-based memberships,
    in one transaction (nothing of a half-registered client is ever visible)."""
    check_facts(facts)
    secret = "qmc_" + secrets.token_urlsafe(32)
    client_id, now = new_client_id(), utcnow()
    row = {
        "client_id": client_id,
        "secret_hash": token_hash(secret),
        "hostname": facts["hostname"],
        "os": facts.get("os", ""),
        "os_version": facts.get("os_version", ""),
        "architecture": facts.get("architecture", ""),
        "ip_addresses": list(facts.get("ip_addresses", [])),
        "agent_version": facts.get("agent_version", ""),
        "properties": dict(facts.get("properties", {})),
        "registered": now,
        "rekey_required": False,
        "poll_requested": False,
    }
    with ctx.db.session() as session:
        membership.lock_for_client(session)
        connection = session.connection()
        approval, rules = connection.execute(_REGISTRATION).one()
        approval = DEFAULTS["require_approval"][1] if approval is None else approval
        row["approval"] = "pending" if approval else "approved"
        connection.execute(_INSERT_CLIENT, row)
        connection.execute(
            _INSERT_MESSAGE,
            status_row(3001, client_id, row["hostname"], client_id=client_id, now=now),
        )
        if rules and row["approval"] == "approved":  # collections by rule, before it polls
            membership.client_changed(session, client_id)
    return {
        "client_id": client_id,
        "client_secret": secret,
        "site_code": ctx.site_code,
        "approval": row["approval"],
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
        "poll_interval": ctx.config.poll_interval,
        # pinned by the client: the offline root it will follow (site/identity/root_store.py)
        "root": root.envelope if (root := ctx.roots.current()) is not None else None,
    }
