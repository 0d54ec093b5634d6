"""A real `qm site serve` (SQLite) with two console accounts, and Chromium driven by
Playwright against it. One site serves the whole module: starting one costs seconds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.e2e.processes import SiteServer, start_site
from tests.required_programs import program

ADMIN_PASSWORD = "correct horse battery staple"
VIEWER, VIEWER_PASSWORD = "vera", "viewer pass phrase 1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    """The site, its console URL and the folder its tests may use."""

    site: SiteServer
    base: Path

    @property
    def url(self) -> str:
        return f"{self.site.url}/console"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    base = tmp_path_factory.mktemp("console")
    site = start_site(base)
    try:
        site.api("POST", "/api/v1/accounts/admin/password", json={"password": ADMIN_PASSWORD})
        site.api(
            "POST",
            "/api/v1/accounts",
            json={"name": VIEWER, "role": "viewer", "password": VIEWER_PASSWORD},
        )
        yield Console(site, base)
    finally:
        site.stop()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium (Playwright's own browser download is not used); without it the
    tests fail at once, in one line naming the package."""
    return program("chromium")


@pytest.fixture(scope="module")
def playwright(chromium: str) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(chromium: str, playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


def signed_in_page(browser: Browser, console: Console, name: str, password: str) -> Page:
    """A fresh browser context (its own cookies) at 1280×800, signed in through the form."""
    context = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{console.url}/")
    assert "/console/sign-in" in page.url
    page.get_by_label("Account name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/")
    return page


@pytest.fixture
def admin_page(browser: Browser, console: Console) -> Iterator[Page]:
    page = signed_in_page(browser, console, "admin", ADMIN_PASSWORD)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def viewer_page(browser: Browser, console: Console) -> Iterator[Page]:
    page = signed_in_page(browser, console, VIEWER, VIEWER_PASSWORD)
    try:
        yield page
    finally:
        page.context.close()


def screenshot(page: Page, name: str, phone: bool = False) -> None:
    """Saved for reviewers under build/screenshots/ (not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if phone:
        page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if phone:
        page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
