"""Release approval, decided on the client: a threshold of the root's approver keys must sign
the exact package hash and program commands (or application revision), for the collection.

1 of 2 approvals: not installable; 2 of 2: installable; approvals of another version's hash
do not count; a key the root does not name cannot approve. Each refusal is a numbered status
message (10082) naming the check and the count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    messages,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def _refusals(site: SiteServer, client_id: str, message_id: int) -> list[str]:
    return [
        m["insertion_strings"][3]
        for m in messages(site, client=client_id)
        if m["message_id"] == message_id
    ]


def make_approvers(site: SiteServer, offline: Path, *names: str, approvals: int = 2) -> list[Path]:
    keys = [offline / f"{name}.key" for name in names]
    for key in keys:
        run_qm("keys", "generate", "--out", str(key))
    approvers = [arg for key in keys for arg in ("--approver", f"{key}.pub")]
    run_qm(
        "keys", "root", "init", "--home", str(site.home), "--out", str(offline / "root.json"),
        *approvers, "--approvals", str(approvals),
    )  # fmt: skip
    return keys


def test_two_of_two_approvals_make_a_release_installable_and_only_for_its_hash(
    site: SiteServer, tmp_path: Path
) -> None:
    alice, bob = make_approvers(site, tmp_path / "offline", "alice", "bob")
    marker = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", marker, "version 1\n")
    package_id = create_package(site, source)
    home = tmp_path / "client"
    client_id = register_client(site, home)
    deploy_to(site, package_id, [client_id], "Lab", "Install", "--rerun", "always")

    [v1] = site.qm("package", "show", package_id, "--json").json()["approvals"]
    assert (v1["approvals"], v1["threshold"], v1["pending"]) == (0, 2, True)
    pending = site.qm("release", "pending", "--json").json()
    assert pending["required"] and [p["package_id"] for p in pending["pending"]] == [package_id]

    run_client(home)
    assert not marker.exists()
    assert "0 of 2 approver signatures" in _refusals(site, client_id, 10082)[-1]

    site.qm(
        "release",
        "approve",
        package_id,
        "1",
        "--key",
        str(alice),
        "--program",
        "Install",
        "--collection",
        "Lab",
    )
    run_client(home)
    assert not marker.exists()
    assert "1 of 2 approver signatures" in _refusals(site, client_id, 10082)[-1]

    site.qm(
        "release",
        "approve",
        package_id,
        "1",
        "--key",
        str(bob),
        "--program",
        "Install",
        "--collection",
        "Lab",
    )
    run_client(home)
    assert marker.read_text() == "version 1\n"
    [v1] = site.qm("package", "show", package_id, "--json").json()["approvals"]
    assert (v1["approvals"], v1["pending"]) == (2, False)
    assert site.qm("release", "pending", "--json").json()["pending"] == []

    # version 2 has another hash: version 1's approvals do not count for it
    (source / "payload.txt").write_text("version 2\n")
    site.qm("package", "update", package_id)
    wait_installed(site, package_id, version=2)
    run_client(home)
    assert marker.read_text() == "version 1\n"
    last = _refusals(site, client_id, 10082)[-1]
    assert "0 of 2" in last and "version 2" in last

    # a key the root does not name cannot approve, even with an operator's token
    stranger = tmp_path / "stranger.key"
    run_qm("keys", "generate", "--out", str(stranger))
    refused = site.qm(
        "release", "approve", package_id, "2", "--key", str(stranger),
        "--program", "Install", "--any-collection",
        check=False,
    )  # fmt: skip
    assert refused.code != 0 and "not an approver key" in refused.stderr + refused.stdout
    site.qm(
        "release",
        "approve",
        package_id,
        "2",
        "--key",
        str(alice),
        "--program",
        "Install",
        "--collection",
        "Lab",
    )
    site.qm(
        "release",
        "approve",
        package_id,
        "2",
        "--key",
        str(bob),
        "--program",
        "Install",
        "--collection",
        "Lab",
    )
    run_client(home)
    assert marker.read_text() == "version 2\n"


def test_an_application_revision_runs_once_approvers_signed_its_commands_and_detection(
    site: SiteServer, tmp_path: Path
) -> None:
    alice, bob = make_approvers(site, tmp_path / "offline", "alice", "bob")
    marker = tmp_path / "tool" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", marker, "tool\n"))
    app_id = site.qm(
        "app", "create", "--name", "Tool", "--package", package_id, "--install", "Install",
        "--detect", f"file:{marker}",
    ).stdout.strip()  # fmt: skip
    home = tmp_path / "client"
    client_id = register_client(site, home)
    site.qm("collection", "create", "Lab")
    site.qm("collection", "add", "Lab", client_id)
    site.qm("deploy", "create", "--app", app_id, "--collection", "Lab")
    # approving the package version is not approving the application's detection rules
    for key in (alice, bob):
        site.qm(
            "release",
            "approve",
            package_id,
            "1",
            "--key",
            str(key),
            "--program",
            "Install",
            "--collection",
            "Lab",
        )
    run_client(home)
    assert not marker.exists()
    assert "commands or detection rules" in _refusals(site, client_id, 10084)[-1]
    for key in (alice, bob):
        site.qm(
            "release",
            "approve-app",
            app_id,
            "1",
            "--key",
            str(key),
            "--collection",
            "Lab",
        )
    run_client(home)
    assert marker.read_text() == "tool\n"
