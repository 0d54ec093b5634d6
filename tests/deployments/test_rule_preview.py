"""The members a rule would select, counted before it is saved: the same rules and facts as
membership evaluation, approved clients only, the first 20 by hostname."""

from __future__ import annotations

from quartermaster.site.collection_rules import parse_rule
from quartermaster.site.context import SiteContext
from quartermaster.site.targeting.rule_preview import preview_rules
from tests.deployments.conftest import add_client


def test_a_preview_counts_every_match_and_lists_the_first_twenty(ctx: SiteContext) -> None:
    for n in range(25, 0, -1):
        add_client(ctx, f"lab-{n:02d}", properties={"ring": "a" if n % 2 else "b"})
    add_client(ctx, "lab-99", approval="pending")
    add_client(ctx, "srv-01")
    with ctx.db.session() as session:
        lab = preview_rules(session, [parse_rule('hostname like "lab-%"')])
        either = preview_rules(
            session, [parse_rule('prop.ring = "b"'), parse_rule('hostname = "srv-01"')]
        )
        none = preview_rules(session, [])
    assert lab.count == 25  # the pending client is not counted
    assert [h for h, _ in lab.first] == [f"lab-{n:02d}" for n in range(1, 21)]
    assert either.count == 12 + 1  # a collection's rules are alternatives
    assert none.count == 0 and none.first == []
