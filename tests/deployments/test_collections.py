"""Collection membership on a real site database: rules, direct members, include, exclude."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import create_deployment
from quartermaster.site.models import Client, DeploymentClient
from quartermaster.site.targeting import membership
from tests.deployments.conftest import (
    add_client,
    client_id_for,
    deployments_of,
    members,
    serial,
)


@pytest.fixture
def fleet(ctx: SiteContext) -> SiteContext:
    """Four clients that differ in every attribute the rule language reads."""
    add_client(
        ctx,
        "lab-01",
        os="linux",
        os_version="6.1.0-26-amd64",
        architecture="x86_64",
        ip_addresses=["10.1.2.3"],
        agent_version="0.2.1",
        properties={"free_disk_mb": 4096, "department": "finance"},
    )
    add_client(
        ctx,
        "lab-02",
        os="linux",
        os_version="5.10",
        architecture="arm64",
        ip_addresses=["10.9.9.9"],
        agent_version="0.1.0",
        properties={"free_disk_mb": 1024},
    )
    add_client(
        ctx,
        "win-01",
        os="windows",
        os_version="10.0.19045",
        architecture="x86_64",
        ip_addresses=["192.168.1.5"],
        agent_version="0.2.0",
        properties={"free_disk_mb": "8192", "department": "it"},
    )
    add_client(
        ctx,
        "mac-01",
        os="macos",
        os_version="14.1",
        architecture="arm64",
        ip_addresses=["fd00::5", "10.1.7.7"],
        agent_version="0.10",
        properties={},
    )
    return ctx


RULE_TABLE = [
    (
        ['os = "linux" and hostname like "lab-%"'],
        {
            "lab-01": "rule: os = linux and hostname like lab-%",
            "lab-02": "rule: os = linux and hostname like lab-%",
        },
    ),
    (
        ["ip in 10.1.0.0/16"],
        {"lab-01": "rule: ip in 10.1.0.0/16", "mac-01": "rule: ip in 10.1.0.0/16"},
    ),
    (
        ["free_disk_mb > 2048"],  # win-01 reports "8192" as text: read as a number
        {"lab-01": "rule: free_disk_mb > 2048", "win-01": "rule: free_disk_mb > 2048"},
    ),
    (
        ['not (arch = "arm64") or agent_version >= "0.2"'],  # 0.10 > 0.2
        {
            "lab-01": "rule: not (architecture = arm64)",
            "win-01": "rule: not (architecture = arm64)",
            "mac-01": "rule: agent_version >= 0.2",
        },
    ),
    (
        ['prop.department != "finance"'],  # a client without the property does not match
        {"win-01": "rule: prop.department != finance"},
    ),
    (
        ['hostname in ("lab-01", "WIN-01")'],
        {
            "lab-01": "rule: hostname in (lab-01, WIN-01)",
            "win-01": "rule: hostname in (lab-01, WIN-01)",
        },
    ),
    (
        ["ip not in (192.168.0.0/16, 10.9.9.9)"],
        {
            "lab-01": "rule: ip not in (192.168.0.0/16, 10.9.9.9)",
            "mac-01": "rule: ip not in (192.168.0.0/16, 10.9.9.9)",
        },
    ),
    (['os_version like "6.%"'], {"lab-01": "rule: os_version like 6.%"}),
    (
        ['os = "windows"', 'arch = "arm64"'],  # any rule makes a member
        {
            "win-01": "rule: os = windows",
            "lab-02": "rule: architecture = arm64",
            "mac-01": "rule: architecture = arm64",
        },
    ),
    (
        ['OS = "Linux"\n  AND free_disk_mb <= 2048'],
        {"lab-02": "rule: os = Linux and free_disk_mb <= 2048"},
    ),
    (['hostname like "nothing-%"'], {}),
]


@pytest.mark.parametrize(("rules", "expected"), RULE_TABLE)
def test_rules_select_members_with_the_reason(
    fleet: SiteContext, rules: list[str], expected: dict[str, str]
) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "Target", rules=rules)
    assert members(fleet, "Target") == expected


def test_rules_are_stored_in_canonical_form_and_removed_by_meaning(fleet: SiteContext) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "Arm", rules=['ARCH = "arm64"'])
        shown = membership.show_collection(session, "Arm")
    assert shown["rules"] == ['architecture = "arm64"']
    assert set(members(fleet, "Arm")) == {"lab-02", "mac-01"}
    with fleet.db.session() as session:
        membership.remove_rule(session, "Arm", "arch   =   'arm64'")
    assert members(fleet, "Arm") == {}
    with pytest.raises(NotFound, match="has no rule"), fleet.db.session() as session:
        membership.remove_rule(session, "Arm", 'os = "linux"')


def test_direct_members_keep_reason_direct_and_survive_rule_changes(fleet: SiteContext) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "Mixed", rules=['os = "linux"'])
        membership.add_member(session, "Mixed", client_id_for("lab-01"))
        membership.add_member(session, "Mixed", client_id_for("win-01"))
    assert members(fleet, "Mixed") == {
        "lab-01": "direct",
        "win-01": "direct",
        "lab-02": "rule: os = linux",
    }
    with fleet.db.session() as session:
        membership.remove_rule(session, "Mixed", 'os = "linux"')
    assert members(fleet, "Mixed") == {"lab-01": "direct", "win-01": "direct"}
    with fleet.db.session() as session:
        membership.remove_member(session, "Mixed", client_id_for("win-01"))
    assert members(fleet, "Mixed") == {"lab-01": "direct"}


def test_include_and_exclude_with_exclusion_winning(fleet: SiteContext) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "Linux", rules=['os = "linux"'])
        membership.create_collection(session, "Arm", rules=['arch = "arm64"'])
        membership.create_collection(session, "Workstations", include=["Linux"], exclude=["Arm"])
        membership.add_member(session, "Workstations", client_id_for("mac-01"))  # arm64
        membership.add_member(session, "Workstations", client_id_for("win-01"))
    assert members(fleet, "Workstations") == {"lab-01": "included from Linux", "win-01": "direct"}
    with fleet.db.session() as session:
        shown = membership.show_collection(session, "Workstations")
    assert (shown["includes"], shown["excludes"]) == (["Linux"], ["Arm"])
    assert shown["direct_members"] == sorted([client_id_for("mac-01"), client_id_for("win-01")])


def test_a_change_reaches_collections_that_include_or_exclude_it_in_order(
    fleet: SiteContext,
) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "Base")
        membership.create_collection(session, "Middle", include=["Base"])
        membership.create_collection(session, "Top", include=["Middle"])
        membership.create_collection(
            session, "AllButBase", rules=['hostname like "%"'], exclude=["Middle"]
        )
    assert members(fleet, "Top") == {}
    assert set(members(fleet, "AllButBase")) == {"lab-01", "lab-02", "win-01", "mac-01"}
    with fleet.db.session() as session:
        membership.add_rule(session, "Base", 'os = "windows"')
    assert members(fleet, "Middle") == {"win-01": "included from Base"}
    assert members(fleet, "Top") == {"win-01": "included from Middle"}
    assert set(members(fleet, "AllButBase")) == {"lab-01", "lab-02", "mac-01"}


def test_a_loop_of_includes_and_excludes_is_refused_and_changes_nothing(fleet: SiteContext) -> None:
    with fleet.db.session() as session:
        membership.create_collection(session, "A", rules=['os = "linux"'])
        membership.create_collection(session, "B", include=["A"])
    with pytest.raises(InvalidInput, match="A -> B -> A"), fleet.db.session() as session:
        membership.link(session, "A", "B", "exclude")
    with fleet.db.session() as session:
        assert membership.show_collection(session, "A")["excludes"] == []
    with pytest.raises(InvalidInput, match="itself"), fleet.db.session() as session:
        membership.link(session, "A", "A", "include")
    with pytest.raises(Conflict, match="already includes"), fleet.db.session() as session:
        membership.link(session, "B", "A", "exclude")


def test_a_bad_rule_creates_no_collection(fleet: SiteContext) -> None:
    with pytest.raises(InvalidInput) as caught, fleet.db.session() as session:
        membership.create_collection(session, "Broken", rules=["os = linux"])
    assert "line 1, column 6" in caught.value.message
    assert caught.value.message.endswith("  os = linux\n       ^")
    with pytest.raises(NotFound), fleet.db.session() as session:
        membership.get_collection(session, "Broken")


def test_only_approved_clients_are_members(ctx: SiteContext) -> None:
    add_client(ctx, "lab-01")
    pending = add_client(ctx, "lab-02", approval="pending")
    with ctx.db.session() as session:
        membership.create_collection(session, "Lab", rules=['hostname like "lab-%"'])
        membership.add_member(session, "Lab", pending)
    assert set(members(ctx, "Lab")) == {"lab-01"}
    with ctx.db.session() as session:
        client = session.get(Client, pending)
        assert client is not None
        client.approval = "approved"
        session.flush()
        assert membership.client_changed(session, pending) is True
    assert members(ctx, "Lab") == {"lab-01": "rule: hostname like lab-%", "lab-02": "direct"}


def test_a_client_reporting_new_properties_joins_and_leaves(
    ctx: SiteContext, package_id: str
) -> None:
    client_id = add_client(ctx, "desk-07", properties={"department": "sales"})
    with ctx.db.session() as session:
        membership.create_collection(session, "Finance", rules=['prop.department = "finance"'])
        deployment_id = create_deployment(session, "QM1", package_id, "Install", "Finance")
    assert members(ctx, "Finance") == {}
    assert deployments_of(ctx, client_id) == {}
    before = serial(ctx)

    facts = {
        "hostname": "desk-07",
        "os": "linux",
        "os_version": "6.1",
        "architecture": "x86_64",
        "ip_addresses": ["10.1.2.3"],
        "agent_version": "0.1.0",
        "properties": {"department": "finance"},
    }
    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        assert membership.report_inventory(session, client, facts) is True
    assert members(ctx, "Finance") == {"desk-07": "rule: prop.department = finance"}
    assert serial(ctx) > before
    assert list(deployments_of(ctx, client_id)) == [deployment_id]

    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        unchanged = membership.report_inventory(session, client, facts)
    assert unchanged is False

    with ctx.db.session() as session:
        client = session.get(Client, client_id)
        assert client is not None
        membership.report_inventory(session, client, {**facts, "properties": {}})
    assert members(ctx, "Finance") == {}
    assert deployments_of(ctx, client_id) == {}
    with ctx.db.session() as session:  # the roll-up row stays, with its history
        rows = session.scalars(
            select(DeploymentClient.client_id).where(
                DeploymentClient.deployment_id == deployment_id
            )
        ).all()
    assert rows == [client_id]


def test_new_members_of_a_deployed_collection_are_targeted(
    ctx: SiteContext, package_id: str
) -> None:
    first = add_client(ctx, "lab-01")
    with ctx.db.session() as session:
        membership.create_collection(session, "Lab", rules=['hostname like "lab-%"'])
        deployment_id = create_deployment(session, "QM1", package_id, "Install", "Lab")
    later = add_client(ctx, "lab-02")
    other = add_client(ctx, "srv-01")
    with ctx.db.session() as session:
        targeted = set(
            session.scalars(
                select(DeploymentClient.client_id).where(
                    DeploymentClient.deployment_id == deployment_id
                )
            )
        )
    assert targeted == {first, later}
    assert list(deployments_of(ctx, later)) == [deployment_id]
    assert deployments_of(ctx, other) == {}
