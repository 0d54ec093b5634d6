"""`qm client notify`: the site asks clients to poll sooner at their next contact."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import Daemon, SiteServer, run_qm, wait_until
from tests.e2e.scenario import register_client, run_client

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]

HINT = "the site asks for the next poll within 60 seconds"


def _policy_hint(site: SiteServer, home: Path) -> str | None:
    secret = (home / "secret").read_text().strip()
    answer = httpx.get(
        f"{site.url}/api/client/v1/policy",
        timeout=30,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 200
    return answer.headers.get("QM-Poll-After")


def test_a_notified_client_is_told_once_to_poll_within_a_minute(
    site: SiteServer, tmp_path: Path
) -> None:
    lab, other = tmp_path / "lab", tmp_path / "other"
    lab_id = register_client(site, lab, "lab-01")
    register_client(site, other, "office-01")
    site.qm("collection", "create", "Lab")
    site.qm("collection", "add", "Lab", lab_id)

    notified = site.qm("client", "notify", "--collection", "Lab")
    assert "1 client(s)" in notified.stdout

    first = run_qm("client", "run", "--home", str(lab), "--once")
    assert HINT in first.stdout
    assert HINT not in run_qm("client", "run", "--home", str(lab), "--once").stdout  # cleared
    assert HINT not in run_qm("client", "run", "--home", str(other), "--once").stdout

    site.qm("client", "notify", lab_id)
    assert _policy_hint(site, lab) == "60"  # the policy answer itself carries it, once
    assert _policy_hint(site, lab) is None


def test_notify_refuses_unknown_clients_and_an_empty_request(site: SiteServer) -> None:
    unknown = site.qm("client", "notify", "00000000-0000-4000-8000-000000000000", check=False)
    assert unknown.code != 0 and "no client with ID" in unknown.stderr
    empty = site.qm("client", "notify", check=False)
    assert empty.code != 0 and "--collection" in empty.stderr
    missing = site.qm("client", "notify", "--collection", "Nope", check=False)
    assert missing.code != 0 and "Nope" in missing.stderr


def test_the_client_service_sleeps_less_than_its_interval_after_a_notification(
    site: SiteServer, tmp_path: Path
) -> None:
    home = tmp_path / "client"
    client_id = register_client(site, home)
    run_client(home)
    site.qm("client", "notify", client_id)
    log = home / "logs" / "policyagent.log"
    service = Daemon(["client", "run", "--home", str(home)], tmp_path / "client-service.log")
    service.start()
    try:
        line = wait_until(lambda: service.alive() and _next_run(log), "the next run line")
    finally:
        service.stop()
    assert 60 <= int(line) <= 66  # 60 s and at most 10 % jitter, not the 3600 s interval


def _next_run(log: Path) -> str | None:
    found = re.findall(r"next run in (\d+) seconds", log.read_text()) if log.exists() else []
    return found[-1] if found else None
