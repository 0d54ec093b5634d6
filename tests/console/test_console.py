"""The web console in Chromium against a real `qm site serve`: an administrator publishes,
distributes and deploys a package and watches it succeed; CSRF and roles hold."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.console.conftest import Console, screenshot
from tests.e2e.processes import wait_until
from tests.e2e.scenario import create_package, deploy_to, make_source, register_client, run_client

# One site and one Chromium serve the module: its tests stay on one xdist worker.
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console")]
WAIT = 60_000  # ms: how long the page may take to show what the site did (never asserted)


def _nav(page: Page, section: str) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()


def _reload_until(page: Page, locator: Locator, what: str) -> None:
    """Reload until `locator` finds something; the page's parts load after it, so the text
    alone could come from a part newer than the table being waited for."""

    def shown() -> bool:
        page.reload()
        return locator.count() > 0

    wait_until(shown, what, interval=0.5)


def _create_package(page: Page, console: Console, name: str) -> str:
    source = make_source(
        console.base / f"src-{name}", console.base / "installed" / f"{name}.txt", f"{name} bytes\n"
    )
    _nav(page, "Packages")
    page.get_by_text("New package").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Source folder on the site server").fill(str(source))
    page.get_by_label("Manufacturer").fill("Contoso")
    page.get_by_label("Program name").fill("Install")
    page.get_by_label("Program command line").fill("sh install.sh")
    page.get_by_role("button", name="Create package").click()
    page.wait_for_url(re.compile(r".*/console/packages/QM1[0-9A-F]{5}$"))
    expect(page.get_by_role("status")).to_contain_text("created")
    return page.url.rsplit("/", 1)[1]


def _deploy(
    page: Page, console: Console, package_id: str, collection: str, phases: str = ""
) -> str:
    page.goto(f"{console.url}/packages/{package_id}")
    page.get_by_text("Deploy a program of this package").click()
    page.get_by_label("Collection").select_option(collection)
    if phases:
        page.get_by_label("Phases").fill(phases)
    page.get_by_role("button", name="Review deployment").click()
    warned = page.get_by_label("I have read the warnings and want to deploy anyway")
    if warned.count():
        warned.check()
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(re.compile(r".*/console/deployments/QM1[0-9A-F]{5}$"))
    return page.url.rsplit("/", 1)[1]


def test_an_administrator_deploys_a_package_and_watches_it_succeed(
    admin_page: Page, console: Console
) -> None:
    page = admin_page
    screenshot(page, "01-overview-empty")

    package_id = _create_package(page, console, "Notepad")
    in_table = page.locator("table", has_text="site").get_by_text("Installed")
    _reload_until(page, in_table, f"{package_id} installed on the embedded DP")
    expect(in_table).to_be_visible()
    screenshot(page, "03-package")

    client_home = console.base / "client-lab-01"
    client_id = register_client(console.site, client_home, "lab-01")

    _nav(page, "Collections")
    page.get_by_text("New collection").click()
    page.get_by_label("Name", exact=True).fill("Lab")
    rules = page.get_by_label("Query rules (one per line, optional)")
    rules.fill("hostname = lab-01")
    expect(page.locator("#col-rules-check")).to_contain_text("double quotes", timeout=WAIT)
    rules.fill('hostname = "lab-01"')
    expect(page.locator("#col-rules-check")).to_contain_text("Valid", timeout=WAIT)
    page.get_by_role("button", name="Create collection").click()
    page.wait_for_url(f"{console.url}/collections/Lab")
    expect(page.get_by_role("link", name="lab-01")).to_be_visible()
    expect(page.get_by_role("cell", name="rule: hostname = lab-01")).to_be_visible()
    screenshot(page, "05-collection")

    deployment_id = _deploy(page, console, package_id, "Lab")
    expect(page.locator('[data-state="unknown"]')).to_have_text("1")
    run_client(client_home)
    # The summary refreshes itself every 5 s while clients are outstanding.
    expect(page.locator('[data-state="succeeded"]')).to_have_text("1", timeout=WAIT)
    page.reload()
    row = page.locator("tr", has_text="lab-01")
    expect(row.get_by_text("Succeeded", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="10008")).to_be_visible()
    screenshot(page, "06-deployment-succeeded")

    _nav(page, "Status messages")
    page.get_by_label("Message ID").fill("10008")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#status-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"Deployment {deployment_id}, package {package_id}")
    rows.first.locator("summary").click()
    expect(rows.first).to_contain_text("The program ended with a success exit code.")
    screenshot(page, "07-status-messages-10008")

    page.goto(f"{console.url}/clients/{client_id}")
    expect(page.get_by_role("heading", name=re.compile("lab-01"))).to_be_visible()
    targeted = page.locator("tr", has_text=deployment_id)
    expect(targeted.get_by_text("Succeeded", exact=True)).to_be_visible()
    screenshot(page, "08-client")


def test_a_phased_deployment_is_paused_and_resumed(admin_page: Page, console: Console) -> None:
    page = admin_page
    register_client(console.site, console.base / "client-ring-01", "ring-01")
    page.goto(f"{console.url}/collections")
    page.get_by_text("New collection").click()
    page.get_by_label("Name", exact=True).fill("Ring")
    page.get_by_label("Query rules (one per line, optional)").fill('hostname like "ring-%"')
    page.get_by_role("button", name="Create collection").click()
    page.wait_for_url(f"{console.url}/collections/Ring")
    package_id = _create_package(page, console, "Ringtool")

    deployment_id = _deploy(page, console, package_id, "Ring", phases="50%,100%")
    expect(page.get_by_role("heading", name="Phased rollout")).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text(f"{deployment_id} paused")
    expect(page.locator("#summary").get_by_text("Paused", exact=True)).to_be_visible()
    expect(page.locator("#state-reason")).to_contain_text("paused by an administrator")
    screenshot(page, "09-deployment-paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text(f"{deployment_id} resumed")
    expect(page.locator("#summary").get_by_text("Active", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()

    audit = console.site.api("GET", "/api/v1/audit", params={"action": "deployment.update"})
    console_entries = [e for e in audit["entries"] if e["object"] == deployment_id]
    assert [e["outcome"] for e in console_entries] == ["ok", "ok"]
    assert {e["account"] for e in console_entries} == {"admin"}
    assert all(
        e["details"]["route"].startswith("POST /console/deployments/") for e in console_entries
    )


def test_every_page_renders_and_fits_a_phone(admin_page: Page, console: Console) -> None:
    page = admin_page
    for path, name in [
        ("/", "01-overview"),
        ("/packages", "02-packages"),
        ("/dps", "04-dps"),
        ("/dps/site", "04-dp-site"),
        ("/collections", "05-collections"),
        ("/deployments", "06-deployments"),
        ("/status", "07-status-messages"),
        ("/clients", "08-clients"),
    ]:
        response = page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 200, path
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)
    page.goto(f"{console.url}/")
    screenshot(page, "10-overview-phone", phone=True)
    page.goto(f"{console.url}/status")
    screenshot(page, "10-status-phone", phone=True)


def test_the_console_is_usable_with_the_keyboard(admin_page: Page, console: Console) -> None:
    page = admin_page
    page.goto(f"{console.url}/packages")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.closest('main') !== null")
    assert focused, "after 'skip to content', Tab moves into the page's content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control shows where the focus is"


def test_a_post_without_the_csrf_token_is_refused(admin_page: Page, console: Console) -> None:
    page = admin_page  # its own deployment: the module's tests may run on several workers
    package_id = create_package(
        console.site, make_source(console.base / "src-csrf", console.base / "csrf.txt")
    )
    client_id = register_client(console.site, console.base / "client-csrf", "csrf-01")
    deployment_id = deploy_to(console.site, package_id, [client_id], "CSRF lab")
    url = f"{console.url}/deployments/{deployment_id}/cancel"
    refused = page.request.post(url, form={"note": "no token"}, max_redirects=0)
    assert refused.status == 403
    assert "did not come from the console" in refused.text()
    forged = page.request.post(url, form={"csrf_token": "guessed"}, max_redirects=0)
    assert forged.status == 403
    status = console.site.api(
        "GET", f"/api/v1/deployments/{deployment_id}/status", params={"limit": 0}
    )
    assert status["state"] != "cancelled"


def test_a_viewer_sees_no_actions_and_a_forged_post_is_forbidden(
    viewer_page: Page, console: Console
) -> None:
    # Its own deployment: the test must not depend on which tests ran before it.
    package_id = create_package(
        console.site, make_source(console.base / "src-viewer", console.base / "viewer.txt")
    )
    client_id = register_client(console.site, console.base / "client-viewer", "viewer-01")
    deployment_id = deploy_to(console.site, package_id, [client_id], "Viewer lab")
    page = viewer_page
    page.goto(f"{console.url}/deployments")
    page.get_by_role("link", name=deployment_id).click()
    expect(page.locator("main h1")).to_contain_text(deployment_id)
    for action in ("Pause", "Resume", "Cancel deployment"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)
    page.goto(f"{console.url}/packages")
    expect(page.get_by_text("New package")).to_have_count(0)
    screenshot(page, "11-viewer-packages")

    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    forged = page.request.post(
        f"{console.url}/deployments/{deployment_id}/pause",
        form={"csrf_token": token},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "may not" in forged.text()
    audit = console.site.api("GET", "/api/v1/audit", params={"account": "vera"})
    denied = [e for e in audit["entries"] if e["action"] == "deployment.update"]
    assert denied and denied[0]["outcome"] == "denied" and denied[0]["status"] == 403


def test_signing_out_ends_the_session(admin_page: Page, console: Console) -> None:
    page = admin_page
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/console/sign-in"))
    page.goto(f"{console.url}/packages")
    assert "/console/sign-in" in page.url
    screenshot(page, "00-sign-in")
