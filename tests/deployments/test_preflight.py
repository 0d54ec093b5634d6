"""The check before a deployment: its one-line summary, the DPs that serve its targets, the
real size of each phase, and the warnings the console, the REST API and `qm` show."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import update

from quartermaster.site.context import SiteContext
from quartermaster.site.deployments import preflight
from quartermaster.site.deployments.phases import PhasePlan, assign_phase
from quartermaster.site.distribution.points import add_dp
from quartermaster.site.models import DPContent
from quartermaster.site.targeting import membership
from tests.deployments.conftest import add_client

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _lab(ctx: SiteContext, count: int = 3) -> list[str]:
    ids = [add_client(ctx, f"lab-{n}", ip_addresses=[f"10.1.0.{n + 10}"]) for n in range(count)]
    with ctx.db.session() as session:
        membership.create_collection(session, "Lab", rules=['hostname like "lab-%"'])
    return ids


def _check(ctx: SiteContext, package_id: str, **options: object) -> preflight.Preflight:
    with ctx.db.session() as session:
        return preflight.preflight(
            session,
            "QM1",
            package_id,
            "Install",
            "Lab",
            now=NOW,
            **options,  # type: ignore[arg-type]
        )


def _install_everywhere(ctx: SiteContext) -> None:
    with ctx.db.session() as session:
        session.execute(update(DPContent).values(state="installed"))


def test_the_summary_counts_members_and_dps_with_the_content(
    ctx: SiteContext, package_id: str
) -> None:
    _lab(ctx)
    with ctx.db.session() as session:
        add_dp(session, "branch", "http://10.1.0.2:8441", ["10.1.0.0/24"], fallback=False)
        add_dp(session, "elsewhere", "http://10.9.0.2:8441", ["10.9.0.0/24"], fallback=False)
    pending = _check(ctx, package_id)
    assert [(d.dp, d.why) for d in pending.dps] == [("branch", "boundary"), ("site", "fallback")]
    assert pending.sentence == (
        "Install of Demo to 3 clients in Lab, mandatory now, content installed on 0 of 2 DPs"
    )
    assert any("not yet installed on any DP" in w for w in pending.warnings)
    _install_everywhere(ctx)
    ready = _check(ctx, package_id)
    assert ready.content == "content installed on 2 of 2 DPs"
    assert ready.warnings == []


def test_a_schedule_is_said_in_words(ctx: SiteContext) -> None:
    later = datetime(2030, 1, 2, 22, 0, tzinfo=UTC)
    assert preflight.describe_schedule(None, None, NOW) == "mandatory now"
    assert preflight.describe_schedule(NOW, None, NOW) == "available now, not mandatory"
    assert preflight.describe_schedule(None, later, NOW) == (
        "available now, mandatory at 2030-01-02 22:00 UTC"
    )
    assert preflight.describe_schedule(NOW, later, NOW) == (
        "available now, mandatory at 2030-01-02 22:00 UTC"
    )


def test_an_empty_collection_is_warned(ctx: SiteContext, package_id: str) -> None:
    with ctx.db.session() as session:
        membership.create_collection(session, "Lab")
    result = _check(ctx, package_id)
    assert result.members == 0
    assert any("has no members yet" in w for w in result.warnings)


def _plan_with_an_empty_phase(deployment_id: str, clients: list[str]) -> PhasePlan:
    """A two-phase plan whose first phase holds none of `clients` for this deployment ID."""
    for first in range(5, 100, 5):
        plan = PhasePlan((first, 100))
        if all(assign_phase(deployment_id, c, plan) == 2 for c in clients):
            return plan
    raise AssertionError("no plan leaves phase 1 empty")


def test_phases_are_shown_with_their_real_sizes_and_an_empty_one_is_warned(
    ctx: SiteContext, package_id: str
) -> None:
    clients = _lab(ctx)
    _install_everywhere(ctx)
    plan = _plan_with_an_empty_phase("QM120000", clients)  # the first deployment's ID
    result = _check(ctx, package_id, plan=plan)
    assert [(p.phase, p.percent, p.clients) for p in result.phases] == [
        (1, plan.phases[0], 0),
        (2, 100, 3),
    ]
    assert result.warnings == [
        f"phase 1 would hold no client of 3 (phase 1 ({plan.phases[0]}%): 0, phase 2 (100%): "
        "3); an empty phase counts as complete, so the next phase starts at once: give fewer "
        "phases or larger first percentages"
    ]


def test_the_rest_api_returns_the_same_warnings_with_the_new_deployment(
    ctx: SiteContext, package_id: str, api: TestClient
) -> None:
    clients = _lab(ctx)
    plan = _plan_with_an_empty_phase("QM120000", clients)
    before = _check(ctx, package_id, plan=plan)
    created = api.post(
        "/api/v1/deployments",
        json={
            "package_id": package_id.lower(),
            "program": "Install",
            "collection": "Lab",
            "phases": f"{plan.phases[0]}%,100%",
        },
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["deployment_id"] == "QM120000"
    assert answer["warnings"] == before.warnings and len(answer["warnings"]) == 2
    status = api.get("/api/v1/deployments/QM120000/status").json()
    assert "warnings" not in status


def test_the_form_check_names_the_field_of_each_mistake(ctx: SiteContext, package_id: str) -> None:
    _lab(ctx)
    with ctx.db.session() as session:
        errors = preflight.check_fields(
            session,
            {
                "package_id": package_id,
                "program": "Install",
                "collection": "",
                "deadline": "tomorrow at noon",
                "phases": "50%,40%",
            },
            now=NOW,
        )
        good = preflight.check_fields(
            session,
            {
                "package_id": package_id,
                "program": "Install",
                "collection": "Lab",
                "deadline": "+2h",
            },
            now=NOW,
        )
    assert set(errors) == {"collection", "deadline", "phases"}
    assert "deadline" in errors["deadline"] and "do not grow" in errors["phases"]
    assert good == {}
