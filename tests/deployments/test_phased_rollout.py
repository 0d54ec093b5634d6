"""A phased rollout over 20 clients, driven by real status messages through status ingest.

With `--phases 20%,50%,100%` the 20 fixed client IDs fall 5 / 7 / 8 into the phases of the
first deployment (QM120000). Status messages 10008 (succeeded) and 10006 (failed) go through
`status_ingest.ingest`, then the rollout hook runs as status ingest calls it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import (
    create_deployment,
    deployment_status,
    pause_deployment,
    resume_deployment,
)
from quartermaster.site.deployments.phases import PhasePlan, assign_phase, parse_phases
from quartermaster.site.models import Client, StatusMessageRow
from quartermaster.site.targeting import membership
from tests.deployments.conftest import add_client, deployments_of, serial
from tests.deployments.conftest import report as report_status

DEPLOYMENT = "QM120000"
PLAN = PhasePlan((20, 50, 100), 95, 5)


@pytest.fixture
def fleet(ctx: SiteContext, package_id: str) -> dict[int, list[str]]:
    """20 clients in collection Fleet, deployed in phases; their IDs by phase."""
    ids = [add_client(ctx, f"pc-{i:02d}") for i in range(20)]
    with ctx.db.session() as session:
        membership.create_collection(session, "Fleet", rules=['hostname like "pc-%"'])
        deployment_id = create_deployment(
            session, "QM1", package_id, "Install", "Fleet", plan=parse_phases("20%,50%,100%", 95, 5)
        )
    assert deployment_id == DEPLOYMENT
    by_phase: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for client_id in ids:
        by_phase[assign_phase(DEPLOYMENT, client_id, PLAN)].append(client_id)
    assert Counter({n: len(c) for n, c in by_phase.items()}) == Counter({1: 5, 2: 7, 3: 8})
    return by_phase


def report(ctx: SiteContext, client_id: str, message_id: int) -> None:
    report_status(ctx, client_id, DEPLOYMENT, message_id)


def released(ctx: SiteContext, fleet: dict[int, list[str]]) -> dict[int, bool]:
    """Per phase: do its clients have the deployment in their policy (all, or none)?"""
    seen: dict[int, bool] = {}
    for number, client_ids in fleet.items():
        having = {DEPLOYMENT in deployments_of(ctx, c) for c in client_ids}
        assert len(having) == 1, f"phase {number} is half released"
        seen[number] = having.pop()
    return seen


def states(ctx: SiteContext, client_ids: list[str]) -> set[str]:
    return {deployments_of(ctx, c)[DEPLOYMENT]["state"] for c in client_ids}


def rollout(ctx: SiteContext) -> dict[str, Any]:
    with ctx.db.session() as session:
        view: dict[str, Any] = deployment_status(session, DEPLOYMENT)["rollout"]
    return view


def site_messages(ctx: SiteContext, message_id: int) -> list[list[str]]:
    with ctx.db.session() as session:
        rows = session.scalars(
            select(StatusMessageRow)
            .where(StatusMessageRow.message_id == message_id)
            .order_by(StatusMessageRow.id)
        ).all()
    return [list(r.insertion_strings) for r in rows]


def test_phases_release_on_success_and_pause_on_errors(
    ctx: SiteContext, fleet: dict[int, list[str]]
) -> None:
    assert released(ctx, fleet) == {1: True, 2: False, 3: False}

    for client_id in fleet[1][:4]:  # 4 of 5 is 80 %, below 95 %
        report(ctx, client_id, 10008)
    assert released(ctx, fleet) == {1: True, 2: False, 3: False}
    assert site_messages(ctx, 3014) == []

    before = serial(ctx)
    report(ctx, fleet[1][4], 10008)  # 5 of 5
    assert released(ctx, fleet) == {1: True, 2: True, 3: False}
    assert serial(ctx) > before
    assert site_messages(ctx, 3014) == [[DEPLOYMENT, "2", "3", "phase 1: 5 of 5 clients succeeded"]]

    report(ctx, fleet[2][0], 10006)  # 1 of 12 released clients failed: 8 % > 5 %
    view = rollout(ctx)
    assert view["paused"] is True and view["released"] == 2
    assert view["reason"].startswith("paused: 1/12 (8%) of released clients failed")
    assert states(ctx, fleet[1] + fleet[2]) == {"paused"}
    assert released(ctx, fleet) == {1: True, 2: True, 3: False}
    assert site_messages(ctx, 3015) == [[DEPLOYMENT, "1/12", "5"]]

    for client_id in fleet[2][1:]:  # successes while paused release nothing
        report(ctx, client_id, 10008)
    assert released(ctx, fleet) == {1: True, 2: True, 3: False}

    with ctx.db.session() as session:
        resume_deployment(session, DEPLOYMENT)  # the failure is accepted: 6 of 6 succeeded
    assert released(ctx, fleet) == {1: True, 2: True, 3: True}
    assert states(ctx, fleet[1] + fleet[2] + fleet[3]) == {"active"}
    view = rollout(ctx)
    assert [p["accepted_failures"] for p in view["phases"]] == [0, 1, 0]
    assert view["reason"] == "all 3 phases released"

    report(ctx, fleet[3][0], 10006)  # a new failure: 1 of 19 counted clients, 5.3 % > 5 %
    view = rollout(ctx)
    assert view["paused"] is True and (view["failed"], view["counted"]) == (1, 19)
    assert states(ctx, fleet[3]) == {"paused"}
    assert site_messages(ctx, 3015) == [[DEPLOYMENT, "1/12", "5"], [DEPLOYMENT, "1/19", "5"]]


def test_resume_continues_where_it_stopped(ctx: SiteContext, fleet: dict[int, list[str]]) -> None:
    for client_id in fleet[1]:
        report(ctx, client_id, 10008)
    report(ctx, fleet[2][0], 10006)
    assert rollout(ctx)["paused"] is True
    with ctx.db.session() as session:
        resume_deployment(session, DEPLOYMENT)
    view = rollout(ctx)
    assert view["paused"] is False and view["released"] == 2
    assert view["reason"].startswith("phase 2 of 3 released: 0/6 (0%) succeeded")
    for client_id in fleet[2][1:6]:  # 5 of 6 is 83 %
        report(ctx, client_id, 10008)
    assert released(ctx, fleet)[3] is False
    report(ctx, fleet[2][6], 10008)
    assert released(ctx, fleet)[3] is True


def test_an_administrator_pause_holds_releases_until_resume(
    ctx: SiteContext, fleet: dict[int, list[str]]
) -> None:
    with ctx.db.session() as session:
        pause_deployment(session, DEPLOYMENT)
    for client_id in fleet[1]:
        report(ctx, client_id, 10008)
    assert released(ctx, fleet) == {1: True, 2: False, 3: False}
    assert rollout(ctx)["reason"] == "paused by an administrator"
    with ctx.db.session() as session:
        resume_deployment(session, DEPLOYMENT)
    assert released(ctx, fleet) == {1: True, 2: True, 3: False}


def test_exactly_at_the_error_threshold_it_goes_on(ctx: SiteContext, package_id: str) -> None:
    """One failure in 20 is 5 %: not above a 5 % threshold."""
    ids = [add_client(ctx, f"pc-{i:02d}") for i in range(20)]
    with ctx.db.session() as session:
        membership.create_collection(session, "Fleet", rules=['hostname like "pc-%"'])
        create_deployment(
            session, "QM1", package_id, "Install", "Fleet", plan=parse_phases("100%", 95, 5)
        )
    report(ctx, ids[0], 10006)
    assert rollout(ctx)["paused"] is False
    report(ctx, ids[1], 10006)
    assert rollout(ctx)["paused"] is True


def test_a_member_that_leaves_no_longer_holds_its_phase_back(
    ctx: SiteContext, fleet: dict[int, list[str]]
) -> None:
    for client_id in fleet[1][:4]:
        report(ctx, client_id, 10008)
    silent = fleet[1][4]
    with ctx.db.session() as session:
        client = session.get(Client, silent)
        assert client is not None
        membership.report_inventory(session, client, {"hostname": "retired-01", "os": "linux"})
    assert released(ctx, {n: [c for c in ids if c != silent] for n, ids in fleet.items()}) == {
        1: True,
        2: True,
        3: False,
    }
    assert deployments_of(ctx, silent) == {}


def test_status_shows_phases_through_the_api(
    ctx: SiteContext, api: TestClient, fleet: dict[int, list[str]], package_id: str
) -> None:
    for client_id in fleet[1]:
        report(ctx, client_id, 10008)
    status = api.get(f"/api/v1/deployments/{DEPLOYMENT}/status").json()
    assert status["phases"] == PLAN.to_dict()
    view = status["rollout"]
    assert (view["success_threshold"], view["error_threshold"]) == (95, 5)
    assert [
        (p["phase"], p["percent"], p["targeted"], p["succeeded"], p["released"])
        for p in view["phases"]
    ] == [(1, 20, 5, 5, True), (2, 50, 7, 0, True), (3, 100, 8, 0, False)]
    assert view["paused"] is False and view["released"] == 2
    phase_of = {c["client_id"]: c["phase"] for c in status["clients"]}
    assert {phase_of[c] for c in fleet[3]} == {3}
    created = api.post(
        "/api/v1/deployments",
        json={
            "package_id": package_id,
            "program": "Install",
            "collection": "Fleet",
            "phases": "10,100",
            "success_threshold": 80,
            "error_threshold": 20,
        },
    )
    assert created.status_code == 201
    assert created.json()["rollout"]["success_threshold"] == 80
