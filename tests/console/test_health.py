"""What needs attention: pauses told apart (an administrator's, the error threshold's, with
the threshold and the count), held clients, an overview panel for warnings as well as
errors, DP health from reachability, content state and mismatch reports, and progress
with numbers, labelled axes and "as soon as possible"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import screenshot
from tests.console.populated import PopulatedConsole, populated_console

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console-health")]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    yield from populated_console(tmp_path_factory)


def test_an_automatic_pause_is_told_apart_from_an_administrators(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments")
    stopped = page.locator("tbody tr", has_text=found.stopped)
    expect(stopped.get_by_text("Stopped: error threshold")).to_be_visible()
    expect(stopped).to_contain_text("above 10%")
    expect(stopped).to_contain_text("2/2 failed")
    paused = page.locator("tbody tr", has_text=found.paused)
    expect(paused.get_by_text("Paused", exact=True)).to_be_visible()
    expect(paused).to_contain_text("by an administrator")
    expect(paused.get_by_text("Stopped: error threshold")).to_have_count(0)
    screenshot(page, "health-deployments")


def test_clients_of_a_paused_deployment_say_they_are_held(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments/{found.paused}")
    row = page.locator("tbody tr", has_text="lab-05")
    expect(row.get_by_text("Held: deployment paused")).to_be_visible()
    expect(row.get_by_text("Unknown", exact=True)).to_have_count(0)
    page.goto(f"{console.url}/deployments/{found.running}")
    held = page.locator("tbody tr", has_text="Held: phase 2 not released")
    expect(held.first).to_be_visible()


def test_the_overview_lists_what_needs_attention(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/")
    panel = page.locator("#attention")
    expect(panel.get_by_role("link", name=f"Deployment {found.stopped}")).to_be_visible()
    expect(panel).to_contain_text("stopped by its error threshold")
    expect(panel.get_by_role("link", name="dp-bad")).to_be_visible()
    expect(panel).to_contain_text("3 hash mismatch report(s)")
    expect(panel.get_by_role("link", name="dp-new")).to_be_visible()
    expect(panel).to_contain_text("never enrolled")
    screenshot(page, "health-overview")
    screenshot(page, "health-overview-phone", phone=True)


def test_dp_health_counts_mismatches_pending_content_and_enrollment(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page = admin_page
    page.goto(f"{console.url}/dps")
    bad = page.locator("tbody tr", has_text="dp-bad")
    expect(bad.locator("[data-health]")).to_have_attribute("data-health", "error")
    expect(bad).to_contain_text("hash mismatch")
    expect(bad).to_contain_text("3 installed")
    pending = page.locator("tbody tr", has_text="dp-pending")
    expect(pending.locator("[data-health]")).to_have_attribute("data-health", "warning")
    expect(pending).to_contain_text("no content installed yet")
    expect(pending).to_contain_text("0 installed")
    page.goto(f"{console.url}/dps/dp-new")
    expect(page.get_by_text("Waiting for enrollment")).to_be_visible()
    expect(page.get_by_text("Active", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Validate now")).to_have_count(0)
    page.goto(f"{console.url}/dps/dp-bad")
    expect(page.locator("#dp-health")).to_contain_text("not yet validated")
    expect(page.get_by_role("button", name="Validate now")).to_be_visible()
    content = page.locator("tbody tr", has_text="7-Zip 23.01")
    expect(content).to_contain_text("2360")  # its last message, next to its state
    screenshot(page, "health-dp")


def test_progress_has_numbers_a_legend_labelled_axes_and_asap(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments")
    row = page.locator("tbody tr", has_text=found.failed)
    expect(row).to_contain_text("1 succeeded")
    expect(row).to_contain_text("1 failed")
    expect(row).to_contain_text("8 unknown")
    expect(row).to_contain_text("as soon as possible")
    expect(page.get_by_role("list", name="Legend")).to_contain_text("Requirements not met")
    page.goto(f"{console.url}/deployments/{found.failed}")
    expect(page.locator("#summary")).to_contain_text("as soon as possible")
    page.goto(f"{console.url}/")
    chart = page.locator("svg.chart.columns")
    expect(chart.locator("text.axis", has_text="day (UTC)")).to_have_count(1)
    expect(chart.locator("text.axis", has_text="reports")).to_have_count(1)
    outcomes = page.get_by_role("list", name="Reports over 14 days")
    expect(outcomes).to_contain_text("Requirements not met")
    expect(outcomes.get_by_text("Failed")).to_be_visible()
    expect(page.locator("#main")).to_contain_text("In progress")


def test_a_package_page_shows_its_content_status_on_every_dp(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/packages/{found.packages['7-Zip 23.01']}")
    status = page.locator("#content-status")
    expect(status).to_contain_text("1 installed")
    expect(status).to_contain_text("0 failed")
    bad = status.locator("li", has_text="dp-bad")
    expect(bad).to_contain_text("Installed")
    expect(bad).to_contain_text("Client lab-03 reported a hash mismatch")
    expect(status.locator("li", has_text="dp-pending")).to_contain_text("Pending")
    screenshot(page, "health-package-content-status")
