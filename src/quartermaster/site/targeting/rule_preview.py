"""Which clients a collection's query rules would select, before the rules are saved.

The console's rule editors show this while the administrator types: the count and the
first few hostnames. It uses the same compiled rules and the same client facts as
membership evaluation (site/collection_rules.py), over approved clients only, so what the
preview counts is what saving the rule would add. One query reads the columns the rules
need, in batches; no client is loaded as an ORM object.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from quartermaster.site.collection_rules import Rule
from quartermaster.site.models import Client

PREVIEW_SIZE = 20
# The column each rule attribute reads (collection_rules.ATTRIBUTES); prop.NAME and
# free_disk_mb read the properties. Only these columns are read: JSON ones cost the most.
_COLUMNS = {"ip": "ip_addresses"} | {
    name: name for name in ("hostname", "os", "os_version", "architecture", "agent_version")
}
_CLIENTS = cast(Table, Client.__table__)


@dataclass(frozen=True)
class RulePreview:
    """How many approved clients match any of the rules, and the first by hostname."""

    count: int
    first: list[tuple[str, str]]  # (hostname, client_id), sorted by hostname


def preview_rules(session: Session, rules: Sequence[Rule], size: int = PREVIEW_SIZE) -> RulePreview:
    """The clients that match any rule (a collection's rules are alternatives)."""
    if not rules:
        return RulePreview(0, [])
    count, matched = 0, []
    needed = {a for rule in rules for a in rule.attributes}
    names = sorted({"client_id", "hostname"} | {_COLUMNS.get(a, "properties") for a in needed})
    query = select(*(_CLIENTS.c[name] for name in names)).where(_CLIENTS.c.approval == "approved")
    for values in session.connection().execution_options(yield_per=2000).execute(query):
        row = dict(zip(names, values, strict=True))
        if any(rule.matches(row) for rule in rules):
            count += 1
            matched.append((str(row["hostname"]), str(row["client_id"])))
    return RulePreview(count, heapq.nsmallest(size, matched))
