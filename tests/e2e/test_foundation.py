"""From a source folder to an installed program, end to end, with real processes on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quartermaster.core.store_layout import blob_path, manifest_path
from tests.e2e.processes import SiteServer
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    deployment_status,
    make_source,
    message_ids,
    messages,
    register_client,
    run_client,
    wait_installed,
)

pytestmark = pytest.mark.e2e


def test_program_installs_and_status_tells_the_story(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "hello fleet\n"))
    client = tmp_path / "client"
    client_id = register_client(site, client)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")

    run_client(client)

    assert target.read_text() == "hello fleet\n"
    status = deployment_status(site, deployment_id)
    assert status["targeted"] == 1
    assert status["counts"]["succeeded"] == 1
    assert status["clients"][0]["client_id"] == client_id
    assert status["clients"][0]["last_message_id"] == 10008
    ids = message_ids(site, deployment=deployment_id)
    assert [i for i in ids if i in (10002, 10005, 10008)] == [10002, 10005, 10008]
    assert 10075 not in ids
    for log in ("cas.log", "execmgr.log", "policyagent.log"):
        assert (client / "logs" / log).read_text().strip(), f"{log} is empty"


def test_edited_source_without_update_installs_published_bytes(
    site: SiteServer, tmp_path: Path
) -> None:
    """KB 907979: the live source folder is never what a client receives."""
    target = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", target, "version one\n")
    package_id = create_package(site, source)
    first_hash = site.qm("package", "show", package_id, "--json").json()["versions"][0][
        "package_hash"
    ]
    (source / "payload.txt").write_text("edited in place, never published\n")
    client = tmp_path / "client"
    client_id = register_client(site, client)
    deploy_to(site, package_id, [client_id], "Lab")

    run_client(client)

    assert target.read_text() == "version one\n"
    assert 10075 not in message_ids(site, client=client_id)

    assert site.qm("package", "update", package_id).stdout.strip() == "2"
    versions = site.qm("package", "show", package_id, "--json").json()["versions"]
    assert [v["source_version"] for v in versions] == [1, 2]
    assert versions[1]["package_hash"] != first_hash
    wait_installed(site, package_id, version=2)
    site.qm("collection", "create", "Lab again")
    site.qm("collection", "add", "Lab again", client_id)
    second = site.qm(
        "deploy",
        "create",
        "--package",
        package_id,
        "--program",
        "Install",
        "--collection",
        "Lab again",
    ).stdout.strip()
    run_client(client)

    assert target.read_text() == "edited in place, never published\n"
    assert deployment_status(site, second)["counts"]["succeeded"] == 1
    assert site.qm("package", "update", package_id).stdout.strip() == "2"  # unchanged: no v3


def test_altered_blob_on_dp_is_reported_and_never_run(site: SiteServer, tmp_path: Path) -> None:
    target = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", target, "good bytes\n"))
    manifest = site.qm("package", "show", package_id, "--json").json()
    files = _manifest_files(site, manifest["versions"][0]["package_hash"])
    payload_sha = files["payload.txt"]
    stored = blob_path(site.home / "dp" / "store", payload_sha)
    stored.write_text("evil bytes\n")
    client = tmp_path / "client"
    client_id = register_client(site, client)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")

    run_client(client)

    assert not target.exists()
    mismatch = [m for m in messages(site, client=client_id) if m["message_id"] == 10075]
    assert mismatch, "no 10075 reported"
    assert mismatch[0]["dp"] == "site"
    assert "payload.txt" in mismatch[0]["text"] and payload_sha in mismatch[0]["text"]
    ids = message_ids(site, deployment=deployment_id)
    assert 10005 not in ids
    status = deployment_status(site, deployment_id)
    assert status["counts"]["failed"] == 1
    assert status["clients"][0]["detail"]


def _manifest_files(site: SiteServer, package_hash: str) -> dict[str, str]:
    envelope = json.loads(manifest_path(site.home / "library", package_hash).read_text())
    return {f["path"]: f["sha256"] for f in envelope["signed"]["files"]}


@pytest.mark.parametrize(
    ("exit_code", "max_runtime", "expected"), [(1, "60", 10006), (0, "1", 10070)]
)
def test_failing_and_overrunning_programs(
    site: SiteServer, tmp_path: Path, exit_code: int, max_runtime: str, expected: int
) -> None:
    target = tmp_path / "installed" / "payload.txt"
    extra = "sleep 30" if expected == 10070 else ""
    source = make_source(tmp_path / "src", target, exit_code=exit_code, extra=extra)
    package_id = create_package(site, source)
    site.qm(
        "program",
        "add",
        package_id,
        "--name",
        "Bounded",
        "--command",
        "sh install.sh",
        "--max-runtime",
        max_runtime,
    )
    client = tmp_path / "client"
    client_id = register_client(site, client)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab", program="Bounded")

    run_client(client)

    rows = [m for m in messages(site, deployment=deployment_id) if m["message_id"] == expected]
    assert rows, f"no {expected} reported"
    if expected == 10006:
        assert rows[0]["insertion_strings"][3] == "1"
    assert deployment_status(site, deployment_id)["counts"]["failed"] == 1
