"""Applications in the console (revisions, detection rules, dependencies and supersedence
drawn as a graph, compliance per deployment with each client's evidence) and running jobs
with their progress."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from quartermaster.site.context import SiteContext
from quartermaster.site.jobs.records import this_owner
from quartermaster.site.models import Job, utcnow
from tests.console.conftest import screenshot
from tests.console.populated import PopulatedConsole, populated_console

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console-apps")]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedConsole]:
    yield from populated_console(tmp_path_factory)


def test_an_application_page_shows_revisions_graph_and_compliance_evidence(
    admin_page: Page, console: PopulatedConsole
) -> None:
    page, found = admin_page, console.found
    page.goto(f"{console.url}/")
    page.get_by_role("link", name="Applications").click()
    page.get_by_role("link", name="7-Zip (app)").click()
    page.wait_for_url(f"{console.url}/applications/{found.apps['7-Zip (app)']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("7-Zip (app)")
    expect(page.locator("ul.rules")).to_contain_text("file:C:/7-Zip/7z.exe")
    graph = page.locator("svg.chart.graph")
    expect(graph).to_have_attribute(
        "aria-label",
        "Dependencies and supersedence: "
        + "; ".join(
            [
                f"{found.apps['7-Zip (app)']} depends on {found.apps['VC runtime']}",
                f"{found.apps['7-Zip (app)']} supersedes {found.apps['7-Zip legacy']}",
            ]
        ),
    )
    expect(graph.locator("rect")).to_have_count(3)
    links = page.get_by_role("list", name="Links as text")
    expect(links).to_contain_text("7-Zip (app) depends on VC runtime")
    expect(links).to_contain_text("7-Zip (app) supersedes 7-Zip legacy")
    compliance = page.locator("section", has_text=f"Install · {found.app_deployment}")
    expect(compliance).to_contain_text("1 of 10 compliant")
    row = compliance.locator("tbody tr", has_text="lab-02")
    expect(row).to_contain_text("file:C:/7-Zip/7z.exe → present: 7z.exe, 571 KiB")
    screenshot(page, "application")
    page.get_by_role("link", name="VC runtime").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("VC runtime")
    expect(page.get_by_role("list", name="Links as text")).to_contain_text(
        "7-Zip (app) depends on VC runtime"
    )


def test_running_jobs_show_their_progress(admin_page: Page, console: PopulatedConsole) -> None:
    page = admin_page
    ctx = SiteContext.open(console.site.home)
    try:
        with ctx.db.session() as session:
            session.execute(
                insert(Job),
                [
                    {
                        "kind": "test-snapshot",  # no runner takes an unknown kind
                        "state": "running",
                        "target": "QM1FFFFF",
                        "files_done": 3,
                        "files_total": 12,
                        "bytes_done": 256 * 1024 * 1024,
                        "bytes_total": 1024 * 1024 * 1024,
                        "created_by": "admin",
                        "started": utcnow() - timedelta(minutes=2),
                        "heartbeat": utcnow(),
                        "owner": this_owner(),  # this test's process: alive, not abandoned
                    }
                ],
            )
    finally:
        ctx.close()
    page.goto(f"{console.url}/")
    page.get_by_role("link", name="Running jobs (1)").click()
    row = page.locator("#running-jobs tbody tr", has_text="test-snapshot")
    expect(row).to_contain_text("25% · 3 of 12 files · 256 MiB of 1 GiB")
    expect(row.locator("progress")).to_have_attribute("value", str(256 * 1024 * 1024))
    screenshot(page, "jobs")
