"""Every console page on a 390 px phone (Chromium's mobile emulation): no sideways page
scroll, a navigation that wraps instead of scrolling, controls that can be tapped. Each page
is also photographed at 1280×800 and 390×844 (build/screenshots/, see docs/console.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import ADMIN_PASSWORD, DESKTOP, PHONE, SCREENSHOTS, Console
from tests.e2e.scenario import create_package, deploy_to, make_source, register_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console")]


@pytest.fixture(scope="module")
def pages(console: Console) -> list[tuple[str, str]]:
    """(name, path) of every page, over a site with one of each object."""
    site = console.base
    package_id = create_package(
        console.site,
        make_source(site / "src-phone", site / "phone.txt"),
        name="Phone tool with a rather long name to wrap",
    )
    client_id = register_client(console.site, site / "client-phone", "phone-01")
    deployment_id = deploy_to(console.site, package_id, [client_id], "Phones")
    return [
        ("overview", "/"),
        ("packages", "/packages"),
        ("package", f"/packages/{package_id}"),
        (
            "deploy-review",
            f"/deployments/review?package_id={package_id}&program=Install"
            "&collection=Phones&phases=50%25,100%25",
        ),
        ("dps", "/dps"),
        ("dp", "/dps/site"),
        ("collections", "/collections"),
        ("collection", "/collections/Phones"),
        ("deployments", "/deployments"),
        ("deployment", f"/deployments/{deployment_id}"),
        ("status", "/status"),
        ("clients", "/clients"),
        ("client", f"/clients/{client_id}"),
        ("not-found", "/packages/QM1FFFFF"),
    ]


@pytest.fixture
def phone(browser: Browser, console: Console) -> Iterator[Page]:
    """A signed-in page in mobile emulation: 390×844, touch, a phone's user agent."""
    context = browser.new_context(
        viewport=PHONE,  # type: ignore[arg-type]
        is_mobile=True,
        has_touch=True,
        device_scale_factor=1,
    )
    page = context.new_page()
    page.goto(f"{console.url}/sign-in")
    _fits(page, "sign-in")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "phone-sign-in.png"), full_page=True)
    page.get_by_label("Account name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").tap()
    page.wait_for_url(f"{console.url}/")
    try:
        yield page
    finally:
        context.close()


def _fits(page: Page, name: str) -> None:
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth,"
        " wide: [...document.querySelectorAll('main *, header *')]"
        "   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5"
        "     && !e.closest('.table-wrap'))"
        "   .slice(0, 5).map(e => e.outerHTML.slice(0, 120))})"
    )
    assert widths["view"] == PHONE["width"], f"{name} was zoomed out to fit: {widths}"
    assert widths["page"] <= widths["view"], f"{name} scrolls sideways: {widths}"


def test_every_page_fits_a_phone_and_is_photographed(
    phone: Page, browser: Browser, console: Console, pages: list[tuple[str, str]]
) -> None:
    for name, path in pages:
        answer = phone.goto(f"{console.url}{path}")
        assert answer is not None and answer.status in (200, 404), (path, answer)
        expect(phone.locator("main h1")).to_be_visible()
        _fits(phone, name)
        phone.screenshot(path=str(SCREENSHOTS / f"phone-{name}.png"), full_page=True)
    desktop = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        page = desktop.new_page()
        page.goto(f"{console.url}/sign-in")
        page.screenshot(path=str(SCREENSHOTS / "desktop-sign-in.png"), full_page=True)
        page.get_by_label("Account name").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{console.url}/")
        for name, path in pages:
            page.goto(f"{console.url}{path}")
            page.screenshot(path=str(SCREENSHOTS / f"desktop-{name}.png"), full_page=True)
    finally:
        desktop.close()
    shots = {p.name for p in SCREENSHOTS.glob("*.png")}
    for name, _ in [("sign-in", ""), *pages]:
        assert {f"phone-{name}.png", f"desktop-{name}.png"} <= shots, name


def test_the_navigation_wraps_instead_of_scrolling_sideways(phone: Page, console: Console) -> None:
    nav = phone.get_by_role("navigation", name="Sections")
    overflow = nav.locator("ul").evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"the navigation scrolls {overflow} px sideways"
    for section in (
        "Overview",
        "Packages",
        "Distribution points",
        "Collections",
        "Deployments",
        "Status messages",
        "Clients",
    ):
        link = nav.get_by_role("link", name=section)
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            f"{section} is cut off: {box}"
        )
    nav.get_by_role("link", name="Collections").tap()
    phone.wait_for_url(f"{console.url}/collections")


def test_a_package_can_be_deployed_by_tapping(
    phone: Page, console: Console, pages: list[tuple[str, str]]
) -> None:
    package_path = dict(pages)["package"]
    phone.goto(f"{console.url}{package_path}")
    phone.get_by_text("Deploy a program of this package").tap()
    collection = phone.get_by_label("Collection")
    expect(collection).to_be_visible()
    collection.select_option("Phones")
    review = phone.get_by_role("button", name="Review deployment")
    review.scroll_into_view_if_needed()
    review.tap()
    expect(phone.locator("#deploy-summary")).to_contain_text("to 1 client in Phones")
    _fits(phone, "deploy review")
    create = phone.get_by_role("button", name="Create deployment")
    create.scroll_into_view_if_needed()
    create.tap()
    phone.wait_for_url(re.compile(r".*/console/deployments/QM1[0-9A-F]{5}$"))
    expect(phone.get_by_role("status")).to_contain_text("created")
