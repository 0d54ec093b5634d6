"""An error's hint in the console: a `qm` command becomes a link to the console page that
shows the same things; any other hint is kept as written."""

from __future__ import annotations

from quartermaster.console.web import console_hint


def test_a_command_in_a_hint_becomes_the_console_page() -> None:
    assert console_hint("list packages with `qm package list`") == (
        "",
        [("Packages", "/console/packages")],
    )
    assert console_hint(
        "add it with `qm program add QM100001 --name ...`; see `qm collection show Lab`"
    ) == ("", [("Packages", "/console/packages"), ("Collections", "/console/collections")])


def test_a_hint_without_a_known_command_is_kept() -> None:
    assert console_hint("choose another name") == ("choose another name", [])
    approve = "approvers sign with `qm release approve QM100001 2`"
    assert console_hint(approve) == (approve, [])
