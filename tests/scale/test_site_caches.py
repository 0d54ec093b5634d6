"""The per-process caches of policy entries and signed manifests follow changes made
through another site process (or the CLI) on the same PostgreSQL database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import run_qm, start_site
from tests.e2e.scenario import create_package, make_source
from tests.scale.test_two_sites import API, _poll, _register, _second_process

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]


def _manifest(url: str, secret: str, package_hash: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{url}{API}/manifests/{package_hash}", headers={"Authorization": f"Bearer {secret}"}
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_cached_policy_and_manifest_follow_changes_made_elsewhere(
    tmp_path: Path, postgres_url: str
) -> None:
    first = start_site(tmp_path, database=postgres_url)
    second = _second_process(first, tmp_path)
    try:
        package_id = create_package(first, make_source(tmp_path / "src", tmp_path / "t.txt"))
        clients = [_register(first, f"pc-{i}") for i in range(3)]
        secrets = [c["client_secret"] for c in clients]
        second.api("POST", "/api/v1/collections", json={"name": "Cached"})
        second.api(
            "POST",
            "/api/v1/collections/Cached/members",
            json={"client_ids": [c["client_id"] for c in clients[:2]]},
        )
        deployment_id = second.api(
            "POST",
            "/api/v1/deployments",
            json={"package_id": package_id, "program": "Install", "collection": "Cached"},
        )["deployment_id"]

        # The first process caches the entries of the collection (both members share them).
        answers = [_poll(first, secret, "") for secret in secrets]
        states = [[d["state"] for d in a.json()["signed"]["deployments"]] for a in answers]
        assert states == [["active"], ["active"], []]
        package_hash = answers[0].json()["signed"]["deployments"][0]["package_hash"]
        before = _manifest(first.url, secrets[0], package_hash)

        # Paused through the second process: the first one answers with the change.
        second.api("POST", f"/api/v1/deployments/{deployment_id}/pause")
        for secret, answer in zip(secrets[:2], answers[:2], strict=True):
            fresh = _poll(first, secret, answer.headers["ETag"])
            assert fresh.status_code == 200
            assert [d["state"] for d in fresh.json()["signed"]["deployments"]] == ["paused"]

        # The third client joins through the second process: its policy lists the deployment.
        second.api(
            "POST",
            "/api/v1/collections/Cached/members",
            json={"client_ids": [clients[2]["client_id"]]},
        )
        third = _poll(first, secrets[2], answers[2].headers["ETag"]).json()["signed"]
        assert [d["deployment_id"] for d in third["deployments"]] == [deployment_id]

        # A key rotation re-signs every manifest in the database (another process): the
        # first process serves the new signatures, not its cached envelope.
        rotated = run_qm("site", "rotate-key", "--home", str(first.home), "--json").json()
        after = _manifest(first.url, secrets[0], package_hash)
        assert after["signed"] == before["signed"]
        keyids = {s["keyid"] for s in after["signatures"]}
        assert keyids == {rotated["new_keyid"], rotated["old_keyid"]}
        assert {s["keyid"] for s in before["signatures"]} == {rotated["old_keyid"]}
        assert _manifest(second.url, secrets[0], package_hash) == after
    finally:
        second.stop()
        first.stop()
