"""Custom properties and the digest that decides when the agent reports its facts."""

from __future__ import annotations

import pytest

from quartermaster.client.machine_facts import MachineFacts, inventory_digest, parse_properties
from quartermaster.core.errors import InvalidInput


def test_properties_are_set_replaced_and_removed() -> None:
    current = parse_properties(["department=lab", "building=B 2"])
    assert current == {"department": "lab", "building": "B 2"}
    changed = parse_properties(["department=office"], current, remove=["building"])
    assert changed == {"department": "office"}
    assert parse_properties(["empty="]) == {"empty": ""}


@pytest.mark.parametrize(
    "bad", ["novalue", "=x", "bad name=x", "9lives=x", "free_disk_mb=1", "x=" + "v" * 256]
)
def test_bad_properties_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_properties([bad])


def test_the_digest_ignores_free_disk_churn_but_not_other_facts() -> None:
    facts = MachineFacts("lab-01", "linux", "6.1", "x86_64", ["10.1.2.3"], free_disk_mb=20_480)
    base = inventory_digest(facts.registration({"department": "lab"}))
    churn = MachineFacts("lab-01", "linux", "6.1", "x86_64", ["10.1.2.3"], free_disk_mb=20_900)
    assert inventory_digest(churn.registration({"department": "lab"})) == base
    moved = MachineFacts("lab-01", "linux", "6.1", "x86_64", ["10.1.9.9"], free_disk_mb=20_480)
    assert inventory_digest(moved.registration({"department": "lab"})) != base
    assert inventory_digest(facts.registration({"department": "office"})) != base
