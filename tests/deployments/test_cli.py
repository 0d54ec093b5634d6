"""`qm collection` and `qm deploy` against a real `qm site serve` (embedded database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ON_SQLITE
from tests.e2e.processes import SiteServer, run_qm

pytestmark = [pytest.mark.e2e, ON_SQLITE]
# December of next year: always ahead of the clock, and in winter (Berlin UTC+1, Tokyo UTC+9).
YEAR = datetime.now(UTC).year + 1


def test_a_rule_error_prints_the_caret_under_the_column(site: SiteServer) -> None:
    result = site.qm(
        "collection",
        "create",
        "Lab",
        "--rule",
        'os = "linux" and [hostname] like "lab-%"',
        check=False,
    )
    assert result.code == 1
    assert result.stderr.splitlines() == [
        "error: rule error at line 1, column 18: unexpected character '['",
        '  os = "linux" and [hostname] like "lab-%"',
        "                   ^",
        'hint: text values go in double quotes, e.g. os = "linux"',
    ]
    assert site.qm("collection", "list", "--json").json()["collections"] == []


def test_collections_and_a_scheduled_phased_deployment(site: SiteServer, tmp_path: Path) -> None:
    assert (
        site.qm("collection", "create", "Servers", "--rule", 'hostname like "srv-%"').stdout.strip()
        == "Servers"
    )
    assert (
        site.qm(
            "collection",
            "create",
            "Lab",
            "--rule",
            'os = "linux" and hostname like "lab-%"',
            "--exclude",
            "Servers",
            "--window",
            "sat 22:00-02:00 utc",
        ).stdout.strip()
        == "Lab"
    )
    client_id = run_qm(
        "client",
        "register",
        "--home",
        str(tmp_path / "client"),
        "--site",
        site.url,
        "--hostname",
        "lab-01",
    ).stdout.strip()
    shown = site.qm("collection", "show", "Lab", "--json").json()
    assert [(m["client_id"], m["reason"]) for m in shown["members"]] == [
        (client_id, "rule: os = linux and hostname like lab-%")
    ]
    assert (shown["excludes"], shown["windows"]) == (["Servers"], ["Sat 22:00-02:00 UTC"])
    added = site.qm("collection", "rule", "add", "Lab", 'arch = "none"').stdout
    assert added.strip() == "Lab: 1 members"
    window = site.qm("collection", "window", "add", "Lab", "daily 1:00-3:00 Europe/Berlin")
    assert window.stdout.strip() == (
        "windows: Sat 22:00-02:00 UTC; daily 01:00-03:00 Europe/Berlin"
    )

    source = tmp_path / "source"
    source.mkdir()
    (source / "install.sh").write_text("exit 0\n")
    package_id = site.qm(
        "package",
        "create",
        "--name",
        "Demo",
        "--source",
        str(source),
        "--program",
        "Install=sh install.sh",
    ).stdout.strip()
    deployment_id = site.qm(
        "deploy",
        "create",
        "--package",
        package_id,
        "--program",
        "Install",
        "--collection",
        "Lab",
        "--available",
        f"{YEAR}-12-01T08:00Z",
        "--deadline",
        f"{YEAR}-12-02T00:00 Europe/Berlin",
        "--expires",
        f"{YEAR}-12-24T20:00Z",
        "--rerun",
        "always",
        "--phases",
        "50%,100%",
        "--success-threshold",
        "90",
    ).stdout.strip()
    data = site.qm("deploy", "status", deployment_id, "--json").json()
    assert (data["available"], data["deadline"]) == (
        f"{YEAR}-12-01T08:00:00+00:00",
        f"{YEAR}-12-01T23:00:00+00:00",
    )
    assert data["rollout"]["success_threshold"] == 90 and data["rerun"] == "always"

    tokyo = run_qm("deploy", "status", deployment_id, env={**site.env, "TZ": "Asia/Tokyo"})
    assert (
        f"available {YEAR}-12-01 17:00 JST, deadline {YEAR}-12-02 08:00 JST, expires "
        f"{YEAR}-12-25 05:00 JST, rerun always"
    ) in tokyo.stdout
    listed = run_qm("deploy", "list", env={**site.env, "TZ": "UTC", "COLUMNS": "250"}).stdout
    assert f"{YEAR}-12-01 08:00 UTC" in listed and f"{YEAR}-12-01 23:00 UTC" in listed

    paused = site.qm("deploy", "pause", deployment_id).stdout.strip()
    assert paused == f"{deployment_id}: paused (paused by an administrator)"
    assert (
        site.qm("deploy", "resume", deployment_id)
        .stdout.strip()
        .startswith(f"{deployment_id}: active")
    )
    cancelled = site.qm("deploy", "cancel", deployment_id).stdout.strip()
    assert cancelled.startswith(f"{deployment_id}: cancelled")
    refused = site.qm("deploy", "resume", deployment_id, check=False)
    assert refused.code == 1 and "cancelled and cannot be resumed" in refused.stderr
    bad = site.qm(
        "deploy",
        "create",
        "--package",
        package_id,
        "--program",
        "Install",
        "--collection",
        "Lab",
        "--deadline",
        "2026-12-24T20:00",
        check=False,
    )
    assert bad.code == 1 and "has no time zone" in bad.stderr
