"""Key rotation with an overlap: registered clients and enrolled DPs follow; stragglers are told.

Real site, DP and client processes. `qm site rotate-key` makes a new key that signs from now
on while the old one co-signs; policy and the DP assignment answer carry the active keys,
so a client and a DP that poll during the overlap trust the new key before
`qm site retire-key` removes the old one. A client that slept through both must register
again, and its refusal (10061) says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm, start_dp, wait_until
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


def _site_keys(site: SiteServer) -> list[str]:
    listing = run_qm("site", "keys", "--home", str(site.home), "--json").json()
    return [k["keyid"] for k in listing["keys"]]


def _trusted(identity_file: Path) -> list[str]:
    return [k["keyid"] for k in json.loads(identity_file.read_text())["signing_keys"]]


def _publish(site: SiteServer, source: Path, package_id: str, text: str, version: int) -> None:
    (source / "payload.txt").write_text(text)
    site.qm("package", "update", package_id)
    wait_installed(site, package_id, version=version)


def _ids(site: SiteServer, client_id: str) -> list[int]:
    return [m["message_id"] for m in messages(site, client=client_id)]


def _no_private_key(folder: Path) -> None:
    """A DP verifies with public keys only: nothing in its home could sign."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.endswith(".log"):
            assert b"PRIVATE KEY" not in path.read_bytes(), path
    identity: dict[str, Any] = json.loads((folder / "dp.json").read_text())
    assert identity["signing_keys"] and all(
        set(k) == {"keyid", "public_key"} for k in identity["signing_keys"]
    )


def test_clients_and_dps_follow_a_rotation_and_a_client_that_slept_through_is_told(
    site: SiteServer, tmp_path: Path
) -> None:
    marker = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", marker, "version 1\n")
    package_id = create_package(site, source)
    dp = start_dp(site, tmp_path, "branch", boundaries=("127.0.0.0/8",))
    try:
        wait_installed(site, package_id, dp="branch")
        awake, asleep = tmp_path / "awake", tmp_path / "asleep"
        awake_id = register_client(site, awake, "awake")
        asleep_id = register_client(site, asleep, "asleep")
        # rerun always: a client that succeeded installs each new source version
        deploy_to(site, package_id, [awake_id, asleep_id], "Lab", "Install", "--rerun", "always")
        run_client(awake)
        assert marker.read_text() == "version 1\n"
        [old_key] = _site_keys(site)

        run_qm("site", "rotate-key", "--home", str(site.home))
        new_key, overlap_key = _site_keys(site)
        assert overlap_key == old_key and new_key != old_key
        _publish(site, source, package_id, "version 2\n", 2)
        wait_installed(site, package_id, dp="branch", version=2)
        wait_until(
            lambda: _trusted(dp.home / "dp.json") == [new_key, old_key],
            "the DP to learn the new key from its assignments",
        )
        run_client(awake)
        assert marker.read_text() == "version 2\n"
        assert _trusted(awake / "client.json") == [new_key, old_key]

        run_qm("site", "retire-key", old_key, "--home", str(site.home))
        assert _site_keys(site) == [new_key]
        _publish(site, source, package_id, "version 3\n", 3)  # signed by the new key alone
        wait_installed(site, package_id, dp="branch", version=3)
        wait_until(lambda: _trusted(dp.home / "dp.json") == [new_key], "the DP to drop the old key")
        run_client(awake)
        assert marker.read_text() == "version 3\n"
        assert _trusted(awake / "client.json") == [new_key]
        downloads = [m for m in messages(site, client=awake_id) if m["message_id"] == 10036]
        assert "branch" in downloads[-1]["insertion_strings"][6]
        assert 10055 not in _ids(site, awake_id) and 10061 not in _ids(site, awake_id)
        _no_private_key(dp.home)
        _no_private_key(site.home / "dp")
    finally:
        dp.stop()

    marker.unlink()
    run_client(asleep)
    refusals = [m for m in messages(site, client=asleep_id) if m["message_id"] == 10061]
    assert refusals, _ids(site, asleep_id)
    reason = refusals[0]["insertion_strings"][0]
    assert "not signed by a key this client trusts" in reason and "re-register" in reason
    assert new_key in reason and old_key in reason
    assert not marker.exists()
    assert 10005 not in _ids(site, asleep_id)

    run_qm("client", "register", "--home", str(asleep), "--site", site.url, "--force")
    assert _trusted(asleep / "client.json") == [new_key]
