"""Small things an administrator notices: the site's icon, error pages that point to console
pages (not to `qm` commands), a warning for a second package of the same name, and IDs
typed in lower case, in the console and in `qm`."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Console
from tests.e2e.scenario import create_package, deploy_to, make_source, register_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console")]


def test_the_favicon_is_served_to_anyone(console: Console, browser: Browser) -> None:
    stranger = browser.new_context()
    try:
        answer = stranger.request.get(f"{console.site.url}/favicon.ico")
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("image/svg+xml")
        assert answer.body().startswith(b"<svg")
        refused = stranger.request.post(f"{console.site.url}/favicon.ico", max_redirects=0)
        assert refused.status == 405
    finally:
        stranger.close()


def test_an_error_page_links_to_the_console_page_not_to_a_command(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    answer = page.goto(f"{console.url}/packages/QM1FFFFF")
    assert answer is not None and answer.status == 404
    main = page.locator("main")
    expect(main).to_contain_text("package QM1FFFFF does not exist")
    expect(main).not_to_contain_text("qm package")
    main.get_by_role("link", name="Open Packages").click()
    page.wait_for_url(f"{console.url}/packages")

    page.goto(f"{console.url}/collections/Nowhere")
    expect(page.locator("main")).not_to_contain_text("qm collection")
    expect(page.get_by_role("link", name="Open Collections")).to_be_visible()


def test_a_failed_action_names_the_console_page_in_its_message(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    page.goto(f"{console.url}/packages")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    page.request.post(
        f"{console.url}/packages/QM1FFFFF/update",
        form={"csrf_token": token or ""},
        headers={"referer": f"{console.url}/packages"},
        max_redirects=0,
    )
    page.goto(f"{console.url}/packages")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("package QM1FFFFF does not exist — see Packages")
    expect(alert).not_to_contain_text("`qm")


def test_a_second_package_of_the_same_name_is_warned(admin_page: Page, console: Console) -> None:
    page = admin_page
    for n in (1, 2):
        source = make_source(console.base / f"src-dup-{n}", console.base / f"dup-{n}.txt")
        page.goto(f"{console.url}/packages")
        page.get_by_text("New package").click()
        page.get_by_label("Name", exact=True).fill("Duplicate Tool" if n == 1 else "duplicate tool")
        page.get_by_label("Source folder on the site server").fill(str(source))
        page.get_by_role("button", name="Create package").click()
        page.wait_for_url(re.compile(r".*/console/packages/QM1[0-9A-F]{5}$"))
    first = page.url.rsplit("/", 1)[1]
    shown = page.get_by_role("status")
    expect(shown).to_contain_text("created")
    expect(shown).to_contain_text("already has the name 'duplicate tool'")

    again = console.site.qm(
        "package",
        "create",
        "--name",
        "DUPLICATE TOOL",
        "--source",
        str(make_source(console.base / "src-dup-3", console.base / "dup-3.txt")),
    )
    assert re.fullmatch(r"QM1[0-9A-F]{5}\n", again.stdout)
    assert "warning: " in again.stderr and "have the name 'DUPLICATE TOOL'" in again.stderr
    assert first[:3] == "QM1"


def test_lower_case_ids_are_accepted_in_the_console_and_by_qm(
    admin_page: Page, console: Console
) -> None:
    site = console.site
    package_id = create_package(
        site, make_source(console.base / "src-lower", console.base / "lower.txt"), name="Lower"
    )
    client_id = register_client(site, console.base / "client-lower", "lower-01")
    deployment_id = deploy_to(site, package_id, [client_id], "Lower lab")
    page = admin_page
    for path, heading in (
        (f"/packages/{package_id.lower()}", "Lower"),
        (f"/deployments/{deployment_id.lower()}", deployment_id),
    ):
        answer = page.goto(f"{console.url}{path}")
        assert answer is not None and answer.status == 200, path
        expect(page.locator("main h1")).to_contain_text(heading)
    page.goto(f"{console.url}/packages?search={package_id.lower()}")
    expect(page.get_by_role("link", name=package_id)).to_be_visible()
    shown = site.qm("package", "show", package_id.lower(), "--json").json()
    assert shown["package_id"] == package_id
    status = site.qm("deploy", "status", deployment_id.lower(), "--json").json()
    assert status["deployment_id"] == deployment_id
