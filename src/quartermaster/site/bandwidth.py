"""Which download limit each client gets: rules kept as a site setting, one put in policy.

A rule names a client (`client`: its ID), a boundary (`boundary`: a CIDR range its
addresses fall in) or neither (everyone); with `rate` and `schedule` as core/bandwidth.py
reads them. The first rule that matches a client is the one its policy carries. Changing the
rules bumps the policy serial, so every client fetches its new limit at its next poll.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy.orm import Session

from quartermaster.core.bandwidth import BandwidthLimit
from quartermaster.core.errors import InvalidInput
from quartermaster.site.models import Client
from quartermaster.site.settings import get_settings


def check_rules(rules: list[Any]) -> list[dict[str, Any]]:
    """The rules as stored; a clear error for the first one that is wrong."""
    checked = []
    for index, rule in enumerate(rules):
        where = f"bandwidth rule {index + 1}"
        if not isinstance(rule, dict):
            raise InvalidInput(f"{where} is not an object")
        unknown = set(rule) - {"client", "boundary", "rate", "schedule"}
        if unknown:
            raise InvalidInput(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        if rule.get("client") and rule.get("boundary"):
            raise InvalidInput(f"{where} names a client and a boundary", "one rule, one target")
        if rule.get("boundary"):
            try:
                ipaddress.ip_network(str(rule["boundary"]), strict=False)
            except ValueError:
                raise InvalidInput(f"{where}: {rule['boundary']!r} is not a CIDR range") from None
        BandwidthLimit.from_dict({"rate": rule.get("rate"), "schedule": rule.get("schedule")})
        checked.append(dict(rule))
    return checked


def limit_for(session: Session, client: Client | str) -> dict[str, Any] | None:
    """The limit the client's policy carries ({rate, schedule}), or None when no rule
    matches (unlimited)."""
    rules = get_settings(session)["bandwidth_rules"]
    if not rules:
        return None
    record = session.get(Client, client) if isinstance(client, str) else client
    if record is None:
        return None
    addresses = []
    for text in record.ip_addresses or []:
        try:
            addresses.append(ipaddress.ip_address(str(text)))
        except ValueError:
            continue
    for rule in rules:
        if rule.get("client"):
            matches = rule["client"] == record.client_id
        elif rule.get("boundary"):
            network = ipaddress.ip_network(str(rule["boundary"]), strict=False)
            matches = any(a in network for a in addresses if a.version == network.version)
        else:
            matches = True
        if matches:
            return {"rate": rule.get("rate"), "schedule": rule.get("schedule") or []}
    return None
