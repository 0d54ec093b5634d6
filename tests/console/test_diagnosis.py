"""Why did it fail: the program's own output reaches the console (on the client's row of the
deployment and in the message details), every message ID leads to its catalog entry, and
one click on a client's row lists that client's messages for that deployment."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import screenshot
from tests.console.populated import OUTPUT, PopulatedConsole, populated_console

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console-diagnosis")]
CAUSE = "Error 1603: the installation folder"
assert CAUSE in OUTPUT


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    yield from populated_console(tmp_path_factory)


def test_the_client_row_of_a_failed_deployment_shows_the_programs_output(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments/{found.failed}")
    row = page.locator("tbody tr", has_text="lab-01")
    expect(row.get_by_text("Failed", exact=True)).to_be_visible()
    row.get_by_text("Program output").click()
    expect(row.locator("pre.output")).to_contain_text(CAUSE)
    screenshot(page, "diagnosis-deployment-output")


def test_one_click_from_a_client_row_lists_its_messages_for_that_deployment(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments/{found.failed}")
    page.get_by_role("link", name=f"Status messages of lab-01 for {found.failed}").click()
    page.wait_for_url(re.compile(r".*/console/status\?"))
    rows = page.locator("#status-rows > tr")
    expect(rows).to_have_count(2)  # 10005 started and 10006 failed, nothing of other clients
    failure = rows.filter(has_text="exit code 1603")
    failure.locator("summary").click()
    expect(failure.locator("pre.output")).to_contain_text(CAUSE)
    expect(failure).to_contain_text("execmgr.log")  # what to do, from the catalog
    screenshot(page, "diagnosis-message-output")


def test_every_message_id_links_to_its_catalog_entry(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/deployments/{found.failed}")
    page.locator("tbody tr", has_text="lab-01").get_by_role("link", name="10006").click()
    page.wait_for_url(re.compile(r".*/console/status/catalog#m10006$"))
    entry = page.locator("#m10006")
    expect(entry).to_be_visible()
    expect(entry).to_contain_text("program failed with exit code")
    page.goto(f"{console.url}/status?message_id=10075")
    page.locator("#status-rows > tr").first.get_by_role("link", name="10075").click()
    page.wait_for_url(re.compile(r".*/console/status/catalog#m10075$"))
    expect(page.locator("#m10075")).to_contain_text("hash verification")
