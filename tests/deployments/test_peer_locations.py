"""The site's side of the peer cache: boundaries, the switch and its overrides, the one
elected fetcher per boundary and version, tickets, and a peer withdrawn for bad bytes."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from quartermaster.core.errors import InvalidInput
from quartermaster.core.peer_ticket import TicketRefused, read_ticket
from quartermaster.site.context import SiteContext
from quartermaster.site.distribution import peers
from quartermaster.site.models import utcnow
from quartermaster.site.settings import update_settings
from tests.deployments.conftest import add_client

HASH = "ab" * 32
DP = [{"dp": "site", "url": "http://dc:8441", "kind": "fallback"}]
LAN = "10.1.2.0/24"


def turn_on(ctx: SiteContext, overrides: list[dict[str, object]] | None = None) -> None:
    with ctx.db.session() as session:
        update_settings(
            session,
            {"peer_cache": overrides is None, "peer_cache_boundaries": overrides or []},
            "test",
        )


def report(ctx: SiteContext, client_id: str, address: str, **body: object) -> dict[str, Any]:
    with ctx.db.session() as session:
        return peers.report(session, client_id, address, {"port": 8450, **body})


def locate(ctx: SiteContext, client_id: str, address: str, now_offset: int = 0) -> dict[str, Any]:
    with ctx.db.session() as session:
        return peers.locate(
            session,
            ctx.key.envelope,
            client_id,
            HASH,
            address,
            DP,
            now=utcnow() + timedelta(seconds=now_offset),
        )


def test_peer_cache_is_off_by_default_and_the_answer_is_the_dps(ctx: SiteContext) -> None:
    a = add_client(ctx, "a")
    assert locate(ctx, a, "10.1.2.10") == {"locations": DP}
    assert report(ctx, a, "10.1.2.10")["serve"] is False


def test_an_override_turns_it_on_for_one_boundary_only(ctx: SiteContext) -> None:
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    a, b = add_client(ctx, "a"), add_client(ctx, "b")
    assert report(ctx, a, "10.1.2.10") == {
        "serve": True, "boundary": LAN, "reason": "", "revalidate": False,
    }  # fmt: skip
    assert report(ctx, b, "10.7.0.10")["serve"] is False  # outside every boundary
    assert locate(ctx, b, "10.7.0.10") == {"locations": DP}


def test_overrides_are_checked() -> None:
    with pytest.raises(InvalidInput):
        peers.check_overrides([{"boundary": "not a range", "peer_cache": True}])
    with pytest.raises(InvalidInput):
        peers.check_overrides([{"boundary": LAN, "peer_cache": "yes"}])
    assert peers.check_overrides([{"boundary": "10.1.2.7/24", "peer_cache": False}]) == [
        {"boundary": LAN, "peer_cache": False}
    ]


def test_one_client_is_elected_the_others_wait_then_get_it_as_a_peer(ctx: SiteContext) -> None:
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    a, b, c = (add_client(ctx, name) for name in "abc")
    for client, host in ((a, 10), (b, 11), (c, 12)):
        report(ctx, client, f"10.1.2.{host}")
    assert locate(ctx, a, "10.1.2.10") == {"locations": DP, "elected": True}
    waiting = locate(ctx, b, "10.1.2.11")
    assert waiting["locations"] == DP and isinstance(waiting["wait_seconds"], int)
    assert locate(ctx, a, "10.1.2.10")["elected"] is True  # asking again keeps the lease
    report(ctx, a, "10.1.2.10", holds=[HASH])  # a holds it now
    listed = locate(ctx, b, "10.1.2.11")["locations"]
    assert isinstance(listed, list) and [e["kind"] for e in listed] == ["peer", "fallback"]
    assert listed[0]["dp"] == f"peer:{a}" and listed[0]["url"].startswith("http://10.1.2.10:8450/")
    token = listed[0]["url"].split("/peer/")[1]
    keys = {k.keyid: k for k in ctx.key.public_keys()}
    payload = read_ticket(token, keys, LAN, time.time())
    assert payload["client_id"] == b
    with pytest.raises(TicketRefused):
        read_ticket(token, keys, "10.9.0.0/24", time.time())


def test_a_lease_that_runs_out_elects_the_next_client(ctx: SiteContext) -> None:
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    a, b = add_client(ctx, "a"), add_client(ctx, "b")
    report(ctx, a, "10.1.2.10")
    report(ctx, b, "10.1.2.11")
    assert locate(ctx, a, "10.1.2.10")["elected"] is True
    assert "wait_seconds" in locate(ctx, b, "10.1.2.11")
    assert locate(ctx, b, "10.1.2.11", now_offset=3600)["elected"] is True


def test_a_peer_on_battery_or_metered_does_not_serve(ctx: SiteContext) -> None:
    turn_on(ctx)
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    a, b = add_client(ctx, "a"), add_client(ctx, "b")
    assert report(ctx, a, "10.1.2.10", on_battery=True, holds=[HASH])["serve"] is False
    assert report(ctx, b, "10.1.2.11", metered=True, holds=[HASH])["serve"] is False
    c = add_client(ctx, "c")
    report(ctx, c, "10.1.2.12")
    assert locate(ctx, c, "10.1.2.12")["elected"] is True  # nobody serving holds it


def test_a_client_that_does_not_serve_is_never_elected(ctx: SiteContext) -> None:
    """The others would wait for it in vain: it goes to the DPs, or waits for a peer."""
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    quiet, peer, late = add_client(ctx, "q"), add_client(ctx, "p"), add_client(ctx, "l")
    report(ctx, peer, "10.1.2.11")
    assert locate(ctx, quiet, "10.1.2.10") == {"locations": DP}  # no lease taken
    assert locate(ctx, peer, "10.1.2.11")["elected"] is True
    assert "wait_seconds" in locate(ctx, late, "10.1.2.12")


def test_a_peer_reported_for_bad_bytes_is_withdrawn_until_it_revalidates(
    ctx: SiteContext,
) -> None:
    turn_on(ctx, [{"boundary": LAN, "peer_cache": True}])
    a, b, stranger = add_client(ctx, "a"), add_client(ctx, "b"), add_client(ctx, "s")
    report(ctx, a, "10.1.2.10", holds=[HASH])
    with ctx.db.session() as session:  # a client of another boundary cannot take it down
        assert not peers.report_bad_peer(session, f"peer:{a}", stranger, HASH, "10.7.0.1")
    with ctx.db.session() as session:
        assert peers.report_bad_peer(session, f"peer:{a}", b, HASH, "10.1.2.11")
    assert locate(ctx, b, "10.1.2.11") == {"locations": DP}  # a is not offered
    assert report(ctx, a, "10.1.2.10", holds=[HASH])["revalidate"] is True
    answer = report(ctx, a, "10.1.2.10", holds=[HASH], revalidated=True)
    assert answer["serve"] is True and answer["revalidate"] is False
    assert [e["kind"] for e in locate(ctx, b, "10.1.2.11")["locations"]] == ["peer", "fallback"]
