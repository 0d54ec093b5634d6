"""One agent run end to end against signed policy, real DPs and real programs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from quartermaster.client.agent import Agent
from quartermaster.client.local_state import Result
from quartermaster.client.site_link import SiteUnreachable
from quartermaster.core.errors import NotFound
from quartermaster.core.signing import SigningKey
from quartermaster.core.site_transport import RekeyRequired, SiteError

from .conftest import START, ClientWorld, InMemorySite, deployment_entry
from .servers import StoreServer, write_store


def test_a_forged_policy_is_refused_and_the_previous_policy_stays(
    world: ClientWorld, dp: StoreServer
) -> None:
    package = world.deploy(dp, deadline=None)
    world.run()
    world.publish(deployment_entry(package, command="exit 0"), key=SigningKey.generate())
    summary = world.run()
    [refused] = world.site.messages(10061)
    assert "not signed by a key this client trusts" in refused["insertion_strings"][0]
    assert summary.policy_serial == 1
    assert 10005 not in world.site.ids()  # the forged policy's mandatory run did not happen


def test_a_rolled_back_policy_is_refused(world: ClientWorld, dp: StoreServer) -> None:
    package = world.deploy(dp, deadline=None)
    world.publish(deployment_entry(package, deadline=None), serial=5)
    world.run()
    world.publish(deployment_entry(package), serial=4)
    world.run()
    assert "rollback" in world.site.messages(10061)[0]["insertion_strings"][0]
    assert world.home.load_config().policy_serial == 5
    assert 10005 not in world.site.ids()


def test_an_expired_policy_is_refused_and_nothing_runs(world: ClientWorld, dp: StoreServer) -> None:
    package = world.deploy(dp)
    world.publish(deployment_entry(package), expires=START - timedelta(seconds=1))
    summary = world.run()
    assert "freeze" in world.site.messages(10061)[0]["insertion_strings"][0]
    assert summary.lines == [] and dp.requests == []


def test_an_unchanged_policy_is_answered_304_and_reused(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, deadline=None)
    world.run()
    summary = world.run()
    assert world.site.calls[0] == ("policy", "")
    assert [c for c in world.site.calls if c[0] == "policy"][1] == ("policy", '"1"')
    assert summary.policy_serial == 1 and summary.lines[0].startswith("QM120000: available")


def test_a_stored_policy_past_its_expiry_is_not_offered_for_304(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, deadline=None)
    world.run()
    world.clock.advance(8 * 24 * 3600)
    world.run()
    assert [c for c in world.site.calls if c[0] == "policy"][-1] == ("policy", "")


def test_policy_received_is_reported_once_per_source_version(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, deadline=None)
    world.run()
    world.run()
    assert world.site.ids().count(10002) == 1
    v2 = world.package({"setup.sh": b"v2"}, version=2)
    write_store(dp.root, v2.blobs)
    world.serve_from(v2, ("dp1", dp.url))
    world.publish(deployment_entry(v2, deadline=None))
    world.run()
    assert [m["properties"]["source_version"] for m in world.site.messages(10002)] == [1, 2]


def test_an_available_deployment_is_announced_once_and_runs_when_asked(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, deadline=START + timedelta(days=1))
    world.run()
    world.run()
    [announced] = world.site.messages(10003)
    assert announced["insertion_strings"][3] == "2026-11-26T12:00:00.000Z"
    assert 10005 not in world.site.ids()
    world.run(install="QM120000")
    assert world.site.ids()[-1] == 10008


def test_asking_for_a_deployment_the_policy_lacks_is_an_error(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, deadline=None)
    with pytest.raises(NotFound, match="QM12FFFF"):
        world.run(install="QM12FFFF")


def test_an_expired_deployment_is_reported_once_and_never_runs(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, expires=START - timedelta(minutes=1))
    world.run()
    world.run()
    assert world.site.ids().count(10057) == 1
    assert 10005 not in world.site.ids() and dp.requests == []


@pytest.mark.parametrize(
    ("rerun", "runs_new_version"), [("if-failed", False), ("always", True), ("if-succeeded", True)]
)
def test_a_succeeded_deployment_runs_a_new_source_version_as_the_rerun_rule_says(
    world: ClientWorld, dp: StoreServer, rerun: str, runs_new_version: bool
) -> None:
    world.deploy(dp, rerun=rerun)
    world.run()
    world.run()
    assert world.site.ids().count(10008) == 1
    v2 = world.package({"setup.sh": b"v2"}, version=2)
    write_store(dp.root, v2.blobs)
    world.serve_from(v2, ("dp1", dp.url))
    world.publish(deployment_entry(v2, rerun=rerun))
    world.run()
    assert world.site.ids().count(10008) == (2 if runs_new_version else 1)
    assert world.state().ran_version == (2 if runs_new_version else 1)


def test_a_failed_deployment_waits_for_a_new_deadline_version_or_request(
    world: ClientWorld, dp: StoreServer
) -> None:
    """Under if-failed a failure is not retried at every agent run (docs/deployments.md)."""
    package = world.deploy(dp, command="exit 1")
    world.run()
    world.run()
    assert world.site.ids().count(10006) == 1
    world.run(install="QM120000")  # a user asks
    assert world.site.ids().count(10006) == 2
    world.run()
    assert world.site.ids().count(10006) == 2
    world.clock.advance(3600)
    world.publish(deployment_entry(package, command="exit 1", deadline=world.clock()))  # moved
    world.run()
    assert world.site.ids().count(10006) == 3
    assert world.state().attempts == 3


def test_status_stays_spooled_while_the_site_cannot_take_it(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp)

    def unreachable(_: list[dict[str, Any]]) -> None:
        raise SiteUnreachable("cannot reach the site")

    world.site.send_status = unreachable  # type: ignore[method-assign,assignment]
    with pytest.raises(SiteUnreachable):
        world.run()
    spooled = [json.loads(p.read_text()) for p in world.home.spool.glob("*.json")]
    assert 10008 in [m["message_id"] for m in spooled]
    del world.site.send_status
    world.run()
    assert 10008 in world.site.ids()
    assert list(world.home.spool.glob("*.json")) == []


@pytest.mark.parametrize("route", ["manifest", "locations"])
def test_a_site_that_fails_while_giving_content_details_stops_the_run_and_fails_nothing(
    world: ClientWorld, dp: StoreServer, route: str
) -> None:
    world.deploy(dp)

    def failing(_: str) -> None:
        raise SiteError("the site server failed", "see the site server's log", 500)

    setattr(world.site, route, failing)
    with pytest.raises(SiteError):
        world.run()
    spooled = [json.loads(p.read_text())["message_id"] for p in world.home.spool.glob("*.json")]
    assert 10051 not in spooled and 10051 not in world.site.ids()
    assert world.state().result != Result.CONTENT_UNAVAILABLE
    delattr(world.site, route)
    world.run()
    assert world.site.ids()[-1] == 10008


def test_older_packages_leave_the_cache_when_it_is_over_its_limit(
    world: ClientWorld, dp: StoreServer
) -> None:
    config = world.home.load_config()
    config.cache_limit_bytes = 150_000
    world.home.save_config(config)
    first = world.deploy(dp, {"a.bin": b"a" * 100_000})
    world.run()
    second = world.package({"b.bin": b"b" * 100_000}, package_id="QM100002")
    write_store(dp.root, second.blobs)
    world.serve_from(second, ("dp1", dp.url))
    world.publish(deployment_entry(first), deployment_entry(second, deployment_id="QM120001"))
    world.run()
    cache = world.home.cache / "content" / "sha256"
    assert not (cache / first.sha_of("a.bin")[:2] / first.sha_of("a.bin")).exists()
    assert (cache / second.sha_of("b.bin")[:2] / second.sha_of("b.bin")).exists()
    assert world.site.ids()[-1] == 10008


def test_a_stop_request_leaves_remaining_deployments_for_the_next_run(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp)
    agent = Agent(
        world.home, world.site, clock=world.clock, facts=world.facts, should_stop=lambda: True
    )
    summary = agent.run_once()
    assert summary.lines == [] and 10005 not in world.site.ids()
    assert world.state().result == ""


def test_local_state_remembers_the_result_between_runs(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, command="exit 1")
    world.run()
    state = world.state()
    assert (state.result, state.exit_code, state.ran_version) == (Result.FAILED, 1, 1)
    assert state.last_run == "2026-11-25T12:00:00.000Z"


def test_changed_facts_are_reported_once_before_policy(world: ClientWorld) -> None:
    world.publish()
    world.run()  # the home never reported these facts (no registration here): report them
    assert len(world.site.inventories) == 1
    world.run()
    assert len(world.site.inventories) == 1  # unchanged: nothing sent

    config = world.home.load_config()
    config.properties = {"department": "lab"}
    world.home.save_config(config)
    world.run()
    assert len(world.site.inventories) == 2
    assert world.site.inventories[-1]["properties"] == {
        "department": "lab",
        "free_disk_mb": 100_000,
    }


def test_free_disk_churn_within_a_gib_is_not_reported(world: ClientWorld) -> None:
    from dataclasses import replace

    world.publish()
    world.run()
    world.facts = replace(world.facts, free_disk_mb=100_000 - 300)
    world.run()
    assert len(world.site.inventories) == 1
    world.facts = replace(world.facts, free_disk_mb=90_000)
    world.run()
    assert len(world.site.inventories) == 2


def test_a_poll_hint_from_the_site_is_in_the_run_summary(world: ClientWorld) -> None:
    world.publish()
    assert world.run().poll_after is None
    world.site.poll_after = 60
    assert world.run().poll_after == 60


class _RekeyingSite(InMemorySite):
    """A site that re-keyed this client: every call fails until a new secret is taken."""

    def __init__(self) -> None:
        super().__init__()
        self.rekeyed = False

    def rekey(self) -> str:
        self.rekeyed = True
        return "qmc_new-secret"

    def inventory(self, facts: dict[str, Any]) -> bool:
        if not self.rekeyed:
            raise RekeyRequired("client must replace its secret before client_api.inventory")
        return super().inventory(facts)


def test_a_rekey_asked_at_the_inventory_report_is_done_before_the_run_goes_on(
    world: ClientWorld,
) -> None:
    """Changed facts are reported before policy, so the inventory call may be the first to
    hear that the site wants a new secret (free disk changed by more than a GiB)."""
    world.site = _RekeyingSite()
    world.publish()
    summary = world.run()
    assert world.site.rekeyed and len(world.site.inventories) == 1
    assert summary.policy_serial is not None
    assert "qmc_new-secret" in "".join(
        p.read_text() for p in world.home.root.iterdir() if "secret" in p.name
    )
