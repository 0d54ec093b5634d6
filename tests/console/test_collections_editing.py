"""Editing collections in Chromium: the rule placeholder is a rule the checker accepts, the
caret sits under the column of a rule error, the members a rule would select show while it
is typed, other collections are picked from a list, maintenance windows are added and
removed; a viewer may do none of it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Console, screenshot
from tests.e2e.scenario import register_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("console")]


@pytest.fixture(scope="module")
def collections(console: Console) -> list[str]:
    """Collections Alpha and Beta; three clients prev-01..03 (approved on registration)."""
    for name in ("Alpha", "Beta"):
        console.site.qm("collection", "create", name)
    return [
        register_client(console.site, console.base / f"client-prev-{n}", f"prev-0{n}")
        for n in (1, 2, 3)
    ]


def test_the_rule_placeholders_are_rules_the_checker_accepts(
    admin_page: Page, console: Console, collections: list[str]
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections/Alpha")
    rule = page.get_by_label("Add a rule")
    rule.fill(rule.get_attribute("placeholder") or "")
    expect(page.locator("#rule-check")).to_contain_text("Valid")
    page.goto(f"{console.url}/collections")
    page.get_by_text("New collection").click()
    rules = page.get_by_label("Query rules (one per line, optional)")
    rules.fill(rules.get_attribute("placeholder") or "")
    expect(page.locator("#col-rules-check")).to_contain_text("Valid")


CARET_OFFSET = """() => {
  const pre = document.querySelector('#rule-check pre.rule-caret');
  const text = pre.firstChild;
  const [source, marks] = text.data.split('\\n');
  const at = (index) => {
    const range = document.createRange();
    range.setStart(text, index);
    range.setEnd(text, index + 1);
    return range.getBoundingClientRect().left;
  };
  return at(source.indexOf('[')) - at(source.length + 1 + marks.indexOf('^'));
}"""


def test_the_caret_sits_under_the_column_of_a_rule_error(
    admin_page: Page, console: Console, collections: list[str]
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections/Alpha")
    page.get_by_label("Add a rule").fill('os = "linux" and [hostname] like "lab-%"')
    check = page.locator("#rule-check")
    expect(check).to_contain_text("column 18: unexpected character '['")
    expect(check.locator("pre.rule-caret")).to_be_visible()
    assert abs(page.evaluate(CARET_OFFSET)) < 1, "the caret is not under the '['"
    screenshot(page, "15-rule-error-caret")


def test_the_members_a_rule_would_select_show_while_it_is_typed(
    admin_page: Page, console: Console, collections: list[str]
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections/Alpha")
    rule = page.get_by_label("Add a rule")
    rule.fill('hostname like "prev-%"')
    preview = page.locator("#rule-check .rule-preview")
    expect(preview.locator(".preview-count")).to_have_text("3")
    expect(preview.get_by_role("link")).to_have_text(["prev-01", "prev-02", "prev-03"])
    rule.fill('hostname = "prev-02"')
    expect(preview.locator(".preview-count")).to_have_text("1")
    expect(preview.get_by_role("link")).to_have_text(["prev-02"])
    screenshot(page, "16-rule-preview")
    members = console.site.api("GET", "/api/v1/collections/Alpha")["members"]
    assert members == [], "previewing a rule changes no membership"


def test_other_collections_are_picked_from_a_list(
    admin_page: Page, console: Console, collections: list[str]
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections/Alpha")
    other = page.get_by_label("Collection", exact=True)
    options = other.locator("option").all_inner_texts()
    assert "Beta" in options and "Alpha" not in options, options
    page.get_by_label("Link").select_option("exclude")
    other.select_option("Beta")
    page.get_by_role("button", name="Add link").click()
    expect(page.get_by_role("status")).to_contain_text("'Alpha' excludes 'Beta'")
    assert console.site.api("GET", "/api/v1/collections/Alpha")["excludes"] == ["Beta"]
    expect(
        page.get_by_label("Collection", exact=True).locator("option", has_text="Beta")
    ).to_have_count(0)


def test_maintenance_windows_are_added_and_removed(
    admin_page: Page, console: Console, collections: list[str]
) -> None:
    page = admin_page
    page.goto(f"{console.url}/collections/Beta")
    page.get_by_label("Add a window").fill("someday 22:00")
    page.get_by_role("button", name="Add window").click()
    expect(page.get_by_role("alert")).to_contain_text("is not understood")
    assert console.site.api("GET", "/api/v1/collections/Beta")["windows"] == []
    page.get_by_label("Add a window").fill("sat 22:00-02:00 utc")
    page.get_by_role("button", name="Add window").click()
    expect(page.get_by_role("status")).to_contain_text("added")
    assert console.site.api("GET", "/api/v1/collections/Beta")["windows"] == ["Sat 22:00-02:00 UTC"]
    screenshot(page, "17-collection-windows")
    page.get_by_role("button", name="Remove window Sat 22:00-02:00 UTC").click()
    expect(page.get_by_role("status")).to_contain_text("removed")
    assert console.site.api("GET", "/api/v1/collections/Beta")["windows"] == []


def test_a_viewer_cannot_change_windows_and_a_stranger_is_sent_to_sign_in(
    viewer_page: Page, console: Console, browser: Browser, collections: list[str]
) -> None:
    page = viewer_page
    page.goto(f"{console.url}/collections/Beta")
    expect(page.get_by_label("Add a window")).to_have_count(0)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = page.request.post(
        f"{console.url}/collections/Beta/windows",
        form={"csrf_token": token or "", "window": "Sun 01:00-02:00 UTC"},
        max_redirects=0,
    )
    assert forged.status == 403
    stranger = browser.new_context()
    try:
        answer = stranger.request.post(
            f"{console.url}/collections/Beta/windows/remove",
            form={"window": "Sun 01:00-02:00 UTC"},
            max_redirects=0,
        )
        assert answer.status in (303, 403)
    finally:
        stranger.close()
    assert console.site.api("GET", "/api/v1/collections/Beta")["windows"] == []
