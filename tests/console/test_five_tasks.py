"""The five questions an administrator starts with, each answered within three clicks of
the overview and without typing an ID:

1. why did this deployment fail on this client;
2. which DP served bad content;
3. create a package and deploy it safely;
4. pause a phased rollout;
5. all 10075 messages of the last day.

A click is a click on a link, a button or a disclosure that opens a page or a part of one;
filling a form with names and a folder (never an ID) and submitting it is not counted, as
it is the task itself, not finding the way to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.conftest import screenshot
from tests.console.populated import OUTPUT, PopulatedConsole, populated_console
from tests.e2e.scenario import make_source

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console-tasks")]
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
ID = re.compile(r"QM1[0-9A-F]{5}")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    yield from populated_console(tmp_path_factory)


class Walk:
    """Counts the clicks of one task, from the overview."""

    def __init__(self, page: Page, console: PopulatedConsole) -> None:
        self.page, self.clicks = page, 0
        page.goto(f"{console.url}/")

    def click(self, target: Locator) -> None:
        self.clicks += 1
        target.click()

    def type(self, target: Locator, text: str) -> None:
        """Typed text is a name, a folder or a rollout, never an object's ID."""
        assert not ID.search(text) and not GUID.search(text), text
        target.fill(text)


def test_why_did_this_deployment_fail_on_this_client(
    admin_page: Page, console: PopulatedConsole
) -> None:
    walk, found = Walk(admin_page, console), console.found
    errors = admin_page.locator(
        "section", has=admin_page.get_by_role("heading", name="Latest errors")
    )
    walk.click(errors.get_by_role("link", name=re.compile(f"Deployment {found.failed}.*failed")))
    failure = admin_page.locator("#status-rows > tr", has_text="exit code 1603")
    walk.click(failure.locator("summary"))
    expect(failure.locator("pre.output")).to_contain_text(OUTPUT.splitlines()[1])
    assert walk.clicks <= 3


def test_which_dp_served_bad_content(admin_page: Page, console: PopulatedConsole) -> None:
    walk = Walk(admin_page, console)
    attention = admin_page.locator("#attention")
    expect(attention).to_contain_text("dp-bad: 3 hash mismatch report(s)")
    walk.click(attention.get_by_role("link", name="dp-bad", exact=True))
    expect(admin_page.locator("#dp-health")).to_contain_text("hash mismatch")
    expect(admin_page.get_by_role("button", name="Validate now")).to_be_visible()
    assert walk.clicks <= 3


def test_create_a_package_and_deploy_it_safely(admin_page: Page, console: PopulatedConsole) -> None:
    walk, page = Walk(admin_page, console), admin_page
    source = make_source(console.base / "src-putty", console.base / "installed" / "putty.txt")
    nav = page.get_by_role("navigation", name="Sections")
    walk.click(nav.get_by_role("link", name="Packages"))
    walk.click(page.get_by_text("New package"))
    walk.type(page.get_by_label("Name", exact=True), "PuTTY 0.80")
    walk.type(page.get_by_label("Source folder on the site server"), str(source))
    walk.type(page.get_by_label("Program name"), "Install")
    walk.type(page.get_by_label("Program command line"), "sh install.sh")
    page.get_by_role("button", name="Create package").click()
    page.wait_for_url(re.compile(r".*/console/packages/QM1[0-9A-F]{5}$"))
    walk.click(page.get_by_text("Deploy a program of this package"))
    page.get_by_label("Collection").select_option("Lab")
    walk.type(page.get_by_label("Phases"), "30%,100%")  # a few clients first
    page.get_by_role("button", name="Review deployment").click()  # the form's submit
    # the summary to confirm: what, to how many, and where the content is
    expect(page.locator("main")).to_contain_text("Install of PuTTY 0.80")
    warned = page.get_by_label("I have read the warnings and want to deploy anyway")
    if warned.count():
        warned.check()
    page.get_by_role("button", name="Create deployment").click()  # the summary's submit
    page.wait_for_url(re.compile(r".*/console/deployments/QM1[0-9A-F]{5}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("PuTTY 0.80")
    expect(page.get_by_role("heading", name="Phased rollout")).to_be_visible()
    assert walk.clicks <= 3


def test_pause_a_phased_rollout(admin_page: Page, console: PopulatedConsole) -> None:
    walk, page, found = Walk(admin_page, console), admin_page, console.found
    nav = page.get_by_role("navigation", name="Sections")
    walk.click(nav.get_by_role("link", name="Deployments"))
    row = page.locator("tbody tr", has_text="Firefox ESR 115")
    walk.click(row.get_by_role("link", name=found.running))
    walk.click(page.get_by_role("button", name="Pause"))
    expect(page.get_by_role("status")).to_contain_text(f"{found.running} paused")
    expect(page.locator("#summary").get_by_text("Paused", exact=True)).to_be_visible()
    assert walk.clicks <= 3


def test_all_10075_messages_of_the_last_day(admin_page: Page, console: PopulatedConsole) -> None:
    walk, page = Walk(admin_page, console), admin_page
    walk.click(page.get_by_role("link", name="All hash mismatches (10075) of the last 24 h"))
    rows = page.locator("#status-rows > tr")
    expect(rows).to_have_count(3)  # not the one of last week
    for n in range(3):
        expect(rows.nth(n)).to_contain_text("failed hash verification")
    expect(page.get_by_label("Message ID")).to_have_value("10075")
    screenshot(page, "five-tasks-10075")
    assert walk.clicks <= 3
