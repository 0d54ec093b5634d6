"""Names, not IDs: host names in status lists and details (the GUID on hover), a client
asked for by host name wherever one is asked for (refused with the candidates when two
share it), and package names next to deployment IDs with cross-links both ways."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import screenshot
from tests.console.populated import PopulatedConsole, populated_console

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console-names")]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    yield from populated_console(tmp_path_factory)


def test_status_lists_have_client_and_dp_columns_with_host_names(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/status?message_id=10075")
    header = page.locator("table.messages thead")
    expect(header.get_by_role("columnheader", name="Client")).to_be_visible()
    expect(header.get_by_role("columnheader", name="DP")).to_be_visible()
    row = page.locator("#status-rows > tr", has_text="lab-04")
    client = row.get_by_role("link", name="lab-04", exact=True).first
    expect(client).to_have_attribute("title", found.clients["lab-04"])
    expect(row.get_by_role("link", name="dp-bad").first).to_be_visible()
    assert found.clients["lab-04"] not in row.locator("td.client").inner_text()
    screenshot(page, "names-status-columns")


def test_the_status_filter_takes_a_host_name_and_refuses_an_ambiguous_one(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/status")
    page.get_by_label("Client (host name or ID)").fill("lab-01")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#status-rows > tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("lab-01")
    page.get_by_label("Client (host name or ID)").fill("kiosk")
    page.get_by_role("button", name="Apply").click()
    problem = page.get_by_role("alert")
    expect(problem).to_contain_text("2 clients are named 'kiosk'")
    for client_id in found.twins:
        expect(problem).to_contain_text(client_id)
    expect(page.locator("#status-rows")).to_contain_text("No status messages match")


def test_a_client_page_by_host_name_and_a_choice_between_twins(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/clients/lab-07")
    expect(page.get_by_role("heading", name=re.compile("lab-07"))).to_be_visible()
    expect(page.locator(".page-head")).to_contain_text(found.clients["lab-07"])
    page.goto(f"{console.url}/clients/kiosk")
    expect(page.get_by_role("heading", name="Several clients are named kiosk")).to_be_visible()
    page.get_by_role("link", name=found.twins[1]).click()
    page.wait_for_url(f"{console.url}/clients/{found.twins[1]}")


def test_a_collection_member_is_added_by_host_name(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections")
    page.get_by_text("New collection").click()
    page.get_by_label("Name", exact=True).fill("Nine")
    page.get_by_role("button", name="Create collection").click()
    page.wait_for_url(f"{console.url}/collections/Nine")
    page.get_by_label("Add a client by host name or ID").fill("lab-09")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text("added")
    expect(page.get_by_role("link", name="lab-09")).to_be_visible()
    page.get_by_label("Add a client by host name or ID").fill("kiosk")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("alert")).to_contain_text("2 clients are named 'kiosk'")


def test_validation_history_names_the_reporting_client(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/dps/dp-bad")
    history = page.locator("section", has=page.get_by_role("heading", name="Validation history"))
    expect(history.get_by_role("link", name="lab-03")).to_be_visible()
    assert found.clients["lab-03"] not in history.inner_text()


def test_deployments_show_package_names_and_cross_link_both_ways(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    seven_zip = found.packages["7-Zip 23.01"]
    page.goto(f"{console.url}/deployments")
    row = page.locator("tbody tr", has_text=found.failed)
    expect(row.get_by_role("link", name="7-Zip 23.01")).to_be_visible()
    page.goto(f"{console.url}/deployments/{found.failed}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("7-Zip 23.01")
    page.goto(f"{console.url}/packages/{seven_zip}")
    related = page.locator("#related-deployments")
    expect(related.get_by_role("link", name=found.failed)).to_be_visible()
    expect(related.get_by_role("link", name=found.paused)).to_be_visible()
    expect(related.get_by_role("link", name=found.stopped)).to_have_count(0)  # Notepad++
    page.goto(f"{console.url}/collections/Lab")
    related = page.locator("#related-deployments")
    for deployment_id in (found.failed, found.stopped, found.running, found.paused):
        expect(related.get_by_role("link", name=deployment_id)).to_be_visible()
    screenshot(page, "names-collection-deployments")


def test_the_cli_takes_a_host_name_too(console: PopulatedConsole) -> None:
    """`qm` asks the REST API, which resolves the name with the console's own lookup."""
    found, site = console.found, console.site
    messages = json.loads(site.qm("status", "messages", "--client", "lab-01", "--json").stdout)
    assert {m["client_id"] for m in messages["messages"]} == {found.failed_client}
    site.qm("collection", "create", "By host name")
    site.qm("collection", "add", "By host name", "lab-08")
    shown = site.api("GET", "/api/v1/collections/By host name")
    assert found.clients["lab-08"] in shown["direct_members"]
    refused = site.qm("collection", "add", "By host name", "kiosk", check=False)
    assert refused.code != 0
    assert "2 clients are named 'kiosk'" in refused.stderr
    assert all(client_id in refused.stderr for client_id in found.twins)
    dps = site.qm("dp", "list").stdout  # a table, or one block per DP where it is narrow
    row = re.search(r"dp-bad .*error: 3 hash mismatch", dps)
    block = re.search(r"name:\s+dp-bad\n(?:(?!name:).*\n)*?health:\s+error: 3 hash mismatch", dps)
    assert row or block, dps
