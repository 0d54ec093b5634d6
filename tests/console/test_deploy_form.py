"""The deploy form in Chromium: nothing preselected, a summary to confirm with the member
count and where the content is, warnings before harm (content on no DP, an empty phase),
and a mistake that keeps every field and is shown beside it; `qm deploy create` prints the
same warnings on stderr."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from quartermaster.site.deployments.phases import PhasePlan, assign_phase
from tests.console.conftest import Console, screenshot
from tests.e2e.scenario import create_package, make_source, register_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console")]
CONFIRM = "I have read the warnings and want to deploy anyway"


@pytest.fixture(scope="module")
def trio(console: Console) -> dict[str, object]:
    """A published package and a collection "Trio" of three registered clients."""
    site = console.site
    package_id = create_package(
        site, make_source(console.base / "src-7zip", console.base / "7zip.txt"), name="7-Zip"
    )
    clients = [
        register_client(site, console.base / f"client-trio-{n}", f"trio-0{n}") for n in range(3)
    ]
    site.qm("collection", "create", "Trio")
    for client_id in clients:
        site.qm("collection", "add", "Trio", client_id)
    return {"package_id": package_id, "clients": clients}


def _open_form(page: Page, console: Console, package_id: str) -> None:
    page.goto(f"{console.url}/packages/{package_id}")
    page.get_by_text("Deploy a program of this package").click()


def _next_deployment_id(console: Console) -> str:
    listed = console.site.api("GET", "/api/v1/deployments", params={"limit": 1000})
    numbers = [int(d["deployment_id"][3:], 16) for d in listed["deployments"]]
    return f"QM1{(max(numbers) + 1 if numbers else 0x20000):05X}"


def test_the_form_preselects_no_collection_and_creates_only_after_the_summary(
    admin_page: Page, console: Console, trio: dict[str, object]
) -> None:
    page, package_id = admin_page, str(trio["package_id"])
    _open_form(page, console, package_id)
    expect(page.get_by_label("Collection")).to_have_value("")
    page.get_by_role("button", name="Review deployment").click()
    expect(page.locator("#dep-collection-error")).to_contain_text("choose the collection")

    page.get_by_label("Collection").select_option("Trio")
    page.get_by_role("button", name="Review deployment").click()
    expect(page.locator("#deploy-summary")).to_have_text(
        "Install of 7-Zip to 3 clients in Trio, mandatory now, content installed on 1 of 1 DPs."
    )
    expect(page.locator("#deploy-warnings")).to_have_count(0)
    screenshot(page, "12-deploy-summary")
    before = console.site.api("GET", "/api/v1/deployments")["deployments"]
    assert all(d["package_id"] != package_id for d in before), "the summary created nothing"
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(re.compile(r".*/console/deployments/QM1[0-9A-F]{5}$"))
    expect(page.get_by_role("status")).to_contain_text("created")


def test_an_empty_phase_and_content_on_no_dp_are_warned_before_confirming(
    admin_page: Page, console: Console, trio: dict[str, object]
) -> None:
    page, package_id = admin_page, str(trio["package_id"])
    clients = [str(c) for c in trio["clients"]]  # type: ignore[attr-defined]
    console.site.qm("package", "remove-dp", package_id, "--dp", "site")
    upcoming = _next_deployment_id(console)
    plan = next(  # phase 1 holds a client, phase 2 none (3 clients leave most 1% gaps empty)
        plan
        for plan in (PhasePlan((p, p + 1, 100)) for p in range(1, 98))
        if [assign_phase(upcoming, c, plan) for c in clients].count(1) > 0
        and all(assign_phase(upcoming, c, plan) != 2 for c in clients)
    )
    first, second = plan.phases[:2]
    _open_form(page, console, package_id)
    page.get_by_label("Collection").select_option("Trio")
    page.get_by_label("Phases").fill(f"{first}%,{second}%,100%")
    page.get_by_role("button", name="Review deployment").click()
    expect(page.locator("#deploy-summary")).to_contain_text("content installed on 0 of 1 DPs")
    warnings = page.locator("#deploy-warnings")
    expect(warnings).to_contain_text("not yet installed on any DP")
    expect(warnings).to_contain_text(f"phase 2 would hold no client of 3 (phase 1 ({first}%): ")
    expect(warnings).to_contain_text(f"phase 2 ({second}%): 0, phase 3 (100%): ")
    phases = page.get_by_role("region", name="Phases")
    expect(phases.locator("tbody tr")).to_have_count(3)
    expect(phases.locator("tbody tr").nth(1).locator("td").last).to_have_text("0")
    screenshot(page, "13-deploy-warnings")

    page.get_by_role("button", name="Create deployment").click()  # not yet confirmed
    assert "/console/deployments/review" in page.url
    page.get_by_label(CONFIRM).check()
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(f"{console.url}/deployments/{upcoming}")
    expect(page.get_by_role("status")).to_contain_text("Warning: the content of")


def test_qm_deploy_create_prints_the_warnings_on_stderr(
    console: Console, trio: dict[str, object]
) -> None:
    console.site.qm("package", "remove-dp", str(trio["package_id"]), "--dp", "site", check=False)
    created = console.site.qm(
        "deploy",
        "create",
        "--package",
        str(trio["package_id"]).lower(),
        "--program",
        "Install",
        "--collection",
        "Trio",
    )
    assert re.fullmatch(r"QM1[0-9A-F]{5}\n", created.stdout)
    assert "warning: the content of" in created.stderr
    assert "not yet installed on any DP that serves the clients of 'Trio'" in created.stderr


def test_a_mistake_keeps_every_field_and_is_shown_beside_it(
    admin_page: Page, console: Console, trio: dict[str, object]
) -> None:
    page = admin_page
    _open_form(page, console, str(trio["package_id"]))
    page.get_by_label("Collection").select_option("Trio")
    page.get_by_label("Deadline (mandatory at)").fill("next tuesday")
    page.get_by_label("Phases").fill("20%,100%")
    page.get_by_label("Error threshold (%)").fill("10")
    page.get_by_role("button", name="Review deployment").click()

    deadline = page.get_by_label("Deadline (mandatory at)")
    expect(deadline).to_be_visible()  # the form is open again
    expect(deadline).to_have_value("next tuesday")
    expect(deadline).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#dep-deadline-error")).to_contain_text("deadline")
    described = deadline.get_attribute("aria-describedby") or ""
    assert "dep-deadline-error" in described.split()
    expect(page.get_by_label("Collection")).to_have_value("Trio")
    expect(page.get_by_label("Phases")).to_have_value("20%,100%")
    expect(page.get_by_label("Error threshold (%)")).to_have_value("10")
    expect(page.locator("#dep-phases-error")).to_have_count(0)
    screenshot(page, "14-deploy-form-error")

    deadline.fill("+2h")
    page.get_by_role("button", name="Review deployment").click()
    expect(page.locator("#deploy-summary")).to_contain_text("available now, mandatory at")


def test_a_viewer_may_not_open_the_summary(viewer_page: Page, console: Console) -> None:
    answer = viewer_page.request.get(
        f"{console.url}/deployments/review?package_id=QM100000&program=Install&collection=Trio",
        max_redirects=0,
    )
    assert answer.status == 403


def test_a_stranger_is_sent_to_sign_in(console: Console, browser: object) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        answer = context.request.get(
            f"{console.url}/deployments/review?package_id=QM100000", max_redirects=0
        )
        assert answer.status == 303
        assert "/console/sign-in" in answer.headers["location"]
    finally:
        context.close()
