"""Deployment schedules, maintenance windows, pause, resume and cancel, as clients see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from quartermaster.core.errors import Conflict, InvalidInput
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import (
    cancel_deployment,
    create_deployment,
    pause_deployment,
    resume_deployment,
)
from quartermaster.site.models import StatusMessageRow
from quartermaster.site.targeting import membership
from tests.deployments.conftest import add_client, deployments_of, serial

# December of next year: always ahead of the clock (the deployment has not expired when the
# policy is built), and in winter, so Berlin is UTC+1 whatever the year.
YEAR = datetime.now(UTC).year + 1

FACTS = {
    "hostname": "lab-01",
    "os": "linux",
    "os_version": "6.1",
    "architecture": "x86_64",
    "ip_addresses": ["10.1.2.3"],
    "agent_version": "0.1.0",
    "properties": {},
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def deploy(api: TestClient, package_id: str, **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/deployments",
        json={"package_id": package_id, "program": "Install", "collection": "Lab", **fields},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def lab(ctx: SiteContext) -> str:
    """Client lab-01 in collection Lab (one window) and in Everyone (another window)."""
    client_id = add_client(ctx, "lab-01")
    add_client(ctx, "srv-01")
    with ctx.db.session() as session:
        membership.create_collection(
            session, "Lab", rules=['hostname like "lab-%"'], windows=["Sat 22:00-02:00 UTC"]
        )
        membership.create_collection(
            session, "Everyone", rules=['os = "linux"'], windows=["daily 01:00-03:00 Europe/Berlin"]
        )
        membership.create_collection(session, "Empty", windows=["Sun 00:00-06:00 UTC"])
    return client_id


def test_a_scheduled_deployment_reaches_policy_with_every_field(
    ctx: SiteContext, api: TestClient, package_id: str, lab: str
) -> None:
    created = deploy(
        api,
        package_id,
        available=f"{YEAR}-12-01T08:00Z",
        deadline=f"{YEAR}-12-02T00:00 Europe/Berlin",
        expires=f"{YEAR}-12-24T20:00+01:00",
        rerun="always",
        override_maintenance=True,
    )
    assert (created["available"], created["deadline"], created["expires"]) == (
        f"{YEAR}-12-01T08:00:00+00:00",
        f"{YEAR}-12-01T23:00:00+00:00",
        f"{YEAR}-12-24T19:00:00+00:00",
    )
    entry = deployments_of(ctx, lab)[created["deployment_id"]]
    assert entry["available"] == f"{YEAR}-12-01T08:00:00Z"
    assert entry["deadline"] == f"{YEAR}-12-01T23:00:00Z"
    assert entry["expires"] == f"{YEAR}-12-24T19:00:00Z"
    assert entry["rerun"] == "always" and entry["state"] == "active"
    assert entry["override_maintenance"] is True
    # windows of every collection the client is in, not only the deployment's
    assert entry["maintenance_windows"] == [
        "Sat 22:00-02:00 UTC",
        "daily 01:00-03:00 Europe/Berlin",
    ]


def test_default_is_mandatory_now_and_available_alone_is_not_mandatory(
    ctx: SiteContext, api: TestClient, package_id: str, lab: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    mandatory = deploy(api, package_id)
    assert mandatory["deadline"] == mandatory["available"]
    assert before <= utc(mandatory["available"]) <= datetime.now(UTC)
    assert mandatory["override_maintenance"] is False and mandatory["rerun"] == "if-failed"

    offered = deploy(api, package_id, available="now", expires="+1w")
    assert offered["deadline"] is None
    assert utc(offered["expires"]) - utc(offered["available"]) == timedelta(weeks=1)
    assert deployments_of(ctx, lab)[offered["deployment_id"]]["deadline"] is None

    later = deploy(api, package_id, deadline="+2h")
    assert utc(later["deadline"]) - utc(later["available"]) == timedelta(hours=2)
    entry = deployments_of(ctx, lab)[later["deployment_id"]]
    assert entry["override_maintenance"] is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"available": "2026-12-02T00:00Z", "deadline": "2026-12-01T00:00Z"},
            "deadline is before the available time",
        ),
        (
            {
                "available": "2026-12-01T00:00Z",
                "deadline": "2026-12-02T00:00Z",
                "expires": "2026-12-02T00:00Z",
            },
            "expires at or before its deadline",
        ),
        ({"deadline": "2026-12-24T20:00"}, "has no time zone"),
        ({"available": "2026-03-29T02:30 Europe/Berlin"}, "does not exist"),
        ({"expires": "+2x"}, "is not a duration"),
        ({"rerun": "sometimes"}, "rerun behaviour 'sometimes' is not known"),
        ({"phases": "50%,25%,100%"}, "do not grow"),
        ({"success_threshold": 90}, "thresholds belong to a phased rollout"),
    ],
)
def test_impossible_schedules_are_refused(
    ctx: SiteContext,
    api: TestClient,
    package_id: str,
    lab: str,
    fields: dict[str, Any],
    message: str,
) -> None:
    response = api.post(
        "/api/v1/deployments",
        json={"package_id": package_id, "program": "Install", "collection": "Lab", **fields},
    )
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]
    assert api.get("/api/v1/deployments").json()["deployments"] == []


def test_out_of_range_fields_are_refused(
    ctx: SiteContext, api: TestClient, package_id: str, lab: str
) -> None:
    for fields in (
        {"phases": "100%", "error_threshold": 101},
        {"available": "x" * 101},
        {"override_maintenance": "sometimes"},
        {"window": "daily 01:00-02:00 UTC"},
    ):
        response = api.post(
            "/api/v1/deployments",
            json={"package_id": package_id, "program": "Install", "collection": "Lab", **fields},
        )
        assert response.status_code == 422, fields


def test_pause_resume_and_cancel_change_policy_and_its_etag(
    ctx: SiteContext, api: TestClient, package_id: str
) -> None:
    api.post("/api/v1/collections", json={"name": "Lab", "rules": ['hostname like "lab-%"']})
    answer = api.post("/api/client/v1/register", json=FACTS).json()
    auth = {"Authorization": f"Bearer {answer['client_secret']}"}
    deployment_id = deploy(api, package_id)["deployment_id"]

    def poll(etag: str | None = None) -> tuple[int, str, list[dict[str, Any]]]:
        headers = {**auth, **({"If-None-Match": etag} if etag else {})}
        response = api.get("/api/client/v1/policy", headers=headers)
        body = response.json()["signed"]["deployments"] if response.status_code == 200 else []
        return response.status_code, response.headers["ETag"], body

    _, etag, entries = poll()
    assert [(d["deployment_id"], d["state"]) for d in entries] == [(deployment_id, "active")]
    assert poll(etag)[0] == 304

    paused = api.post(f"/api/v1/deployments/{deployment_id}/pause")
    assert paused.json()["state"] == "paused"
    assert paused.json()["state_reason"] == "paused by an administrator"
    code, etag, entries = poll(etag)
    assert code == 200 and [d["state"] for d in entries] == ["paused"]

    resumed = api.post(f"/api/v1/deployments/{deployment_id}/resume")
    assert resumed.json()["state"] == "active"
    code, etag, entries = poll(etag)
    assert code == 200 and [d["state"] for d in entries] == ["active"]

    cancelled = api.post(f"/api/v1/deployments/{deployment_id}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    code, etag, entries = poll(etag)
    assert code == 200 and entries == []
    refused = api.post(f"/api/v1/deployments/{deployment_id}/resume")
    assert refused.status_code == 409
    assert api.post("/api/v1/deployments/QM1FFFFF/pause").status_code == 404


def test_steering_raises_site_status_messages_once(
    ctx: SiteContext, package_id: str, lab: str
) -> None:
    with ctx.db.session() as session:
        deployment_id = create_deployment(session, "QM1", package_id, "Install", "Lab")
    start = serial(ctx)
    with ctx.db.session() as session:
        pause_deployment(session, deployment_id)
        pause_deployment(session, deployment_id)  # already paused: nothing more
    assert serial(ctx) == start + 1
    with ctx.db.session() as session:
        resume_deployment(session, deployment_id)
        cancel_deployment(session, deployment_id)
        cancel_deployment(session, deployment_id)
    with pytest.raises(Conflict, match="cancelled"), ctx.db.session() as session:
        pause_deployment(session, deployment_id)
    with ctx.db.session() as session:
        rows = session.scalars(
            select(StatusMessageRow)
            .where(StatusMessageRow.message_id.in_([3011, 3012, 3013]))
            .order_by(StatusMessageRow.id)
        ).all()
    assert [(r.message_id, r.insertion_strings[0]) for r in rows] == [
        (3011, deployment_id),
        (3012, deployment_id),
        (3013, deployment_id),
    ]
    assert deployments_of(ctx, lab) == {}


def test_service_refuses_an_expiry_before_the_deadline(
    ctx: SiteContext, package_id: str, lab: str
) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="never be mandatory"), ctx.db.session() as session:
        create_deployment(
            session,
            "QM1",
            package_id,
            "Install",
            "Lab",
            deadline=now + timedelta(days=2),
            expires=now + timedelta(days=1),
            now=now,
        )
    with ctx.db.session() as session:  # a deadline in the past: mandatory at once
        deployment_id = create_deployment(
            session, "QM1", package_id, "Install", "Lab", deadline=now - timedelta(days=1), now=now
        )
    entry = deployments_of(ctx, lab)[deployment_id]
    assert entry["available"] == entry["deadline"] == "2026-11-24T00:00:00Z"
