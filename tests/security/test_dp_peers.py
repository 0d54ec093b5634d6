"""What an enrolled DP host, or whoever holds an enrollment token, can get from the others.

A DP authenticates only to the site's content library: a peer DP it pulls from (whose
owner may be hostile) never sees its credential, and enrollment accepts only http(s) URLs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, start_dp
from tests.e2e.scenario import (
    create_package,
    make_source,
    messages,
    package_dp_states,
    wait_installed,
)
from tests.integrity.test_wire_and_dp_attacks import _enroll_rogue, _versions
from tests.integrity.wire import RogueDP

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]


def test_a_dp_never_sends_its_credential_to_a_peer_dp(site: SiteServer, tmp_path: Path) -> None:
    package_id = create_package(site, make_source(tmp_path / "src", tmp_path / "out.txt"))
    [package_hash] = _versions(site, package_id)
    rogue = RogueDP(announce_length=None)  # a peer claiming the package, listed before the site
    try:
        _enroll_rogue(site, "rogue-peer", rogue, [package_hash])
        dp = start_dp(site, tmp_path, "branch")
        try:
            wait_installed(site, package_id, dp="branch")  # from the site's library, in the end
        finally:
            dp.stop()
    finally:
        rogue.stop()
    assert rogue.requests, "the DP never asked its peer: the test proves nothing"
    assert rogue.authorizations == [""] * len(rogue.requests), rogue.authorizations


BAD_URLS = [
    "javascript:alert(1)",
    "file:///etc/passwd",
    "http://",
    "http://user:pw@dp.example",
    "ftp://dp",
]


def test_only_http_urls_are_accepted_for_a_dp(site: SiteServer) -> None:
    """Each URL on one site: refused by `qm dp add` and by enrollment, and the refused
    enrollment does not spend its token."""
    for number, url in enumerate(BAD_URLS):
        bad, good = f"bad-{number}", f"good-{number}"
        added = site.qm("dp", "add", "--name", bad, "--url", url, check=False)
        assert added.code != 0 and "is not an http or https URL" in added.stderr, (url, added)
        assert bad not in {d["name"] for d in site.qm("dp", "list", "--json").json()["dps"]}

        token = site.qm("dp", "add", "--name", good, "--url", "http://127.0.0.1:9").stdout.strip()
        refused = httpx.post(
            f"{site.url}/api/dp/v1/enroll", json={"enrollment_token": token, "url": url}, timeout=30
        )
        assert refused.status_code == 422, (url, refused.text)
        assert "is not an http or https URL" in refused.json()["error"]["message"]
        enrolled = httpx.post(  # the token was not spent by the refused attempt
            f"{site.url}/api/dp/v1/enroll", json={"enrollment_token": token}, timeout=30
        )
        assert enrolled.status_code == 200, (url, enrolled.text)
        dps = site.qm("dp", "list", "--json").json()["dps"]
        assert [d["url"] for d in dps if d["name"] == good] == ["http://127.0.0.1:9"], url


def _client(site: SiteServer, address: str) -> dict[str, str]:
    answer = httpx.post(
        f"{site.url}/api/client/v1/register",
        json={"hostname": f"pc-{address}", "ip_addresses": [address]},
        timeout=30,
    ).json()
    return {"Authorization": f"Bearer {answer['client_secret']}"}


def _report_mismatch(
    site: SiteServer, auth: dict[str, str], dp: str, package_hash: str, n: int
) -> None:
    message = {
        "message_id": 10075,
        "time": "2026-01-01T00:00:00Z",
        "dp": dp,
        "insertion_strings": ["QM100001", "QM100001", "Install", dp, "x", package_hash],
        "properties": {"package_hash": package_hash, "dp": dp},
    }
    batch = [{**message, "uid": f"mismatch-{dp}-{i:04d}"} for i in range(n)]
    answer = httpx.post(
        f"{site.url}/api/client/v1/status", json={"messages": batch}, headers=auth, timeout=30
    )
    assert answer.status_code == 200, answer.text


def _dps_for(site: SiteServer, auth: dict[str, str], package_hash: str) -> list[str]:
    answer = httpx.get(
        f"{site.url}/api/client/v1/locations/{package_hash}", headers=auth, timeout=30
    ).json()
    return [location["dp"] for location in answer["locations"]]


def test_a_client_cannot_take_a_dp_copy_out_of_service(site: SiteServer, tmp_path: Path) -> None:
    """Reports name a DP the site never sent the client to, or a good copy: it stays in use."""
    package_id = create_package(site, make_source(tmp_path / "src", tmp_path / "out.txt"))
    [package_hash] = _versions(site, package_id)
    dp = start_dp(site, tmp_path, "branch", boundaries=("10.9.0.0/16",))
    try:
        wait_installed(site, package_id, dp="branch")
        inside, outside = _client(site, "10.9.0.5"), _client(site, "192.168.7.7")
        assert "branch" in _dps_for(site, inside, package_hash)
        assert "branch" not in _dps_for(site, outside, package_hash)

        _report_mismatch(site, outside, "branch", package_hash, 3)  # never sent there
        assert not [m for m in messages(site, dp="branch") if m["message_id"] == 2360]

        _report_mismatch(site, inside, "branch", package_hash, 20)  # sent there, copy is good
        asked = [m for m in messages(site, dp="branch") if m["message_id"] == 2360]
        assert 1 <= len(asked) <= 5, asked  # a revalidation asked for, not twenty
        assert package_dp_states(site, package_id)[("branch", 1)] == "installed"
        assert "branch" in _dps_for(site, inside, package_hash)  # still in service
    finally:
        dp.stop()


def test_range_edge_cases_on_a_served_blob(site: SiteServer, tmp_path: Path) -> None:
    """The site's embedded DP (the same content server as `qm dp serve`), over real HTTP."""
    source = tmp_path / "src"
    source.mkdir()
    blob = bytes(range(256)) * 40
    (source / "data.bin").write_bytes(blob)
    create_package(site, source)
    sha = hashlib.sha256(blob).hexdigest()
    url = f"{site.content_url}/content/sha256/{sha[:2]}/{sha}"
    etag = f'"{sha}"'

    def get(**headers: str) -> httpx.Response:
        return httpx.get(url, headers=headers, timeout=30)

    whole = get()
    assert (whole.status_code, whole.headers["ETag"], whole.content) == (200, etag, blob)
    for headers in (
        {"Range": "bytes=0-1,4-5"},  # several ranges: the whole blob
        {"Range": "bytes=abc"},  # syntactically invalid: ignored
        {"Range": "bytes=9-3"},  # last before first: invalid, ignored
        {"Range": "bytes=0-1", "If-Range": f"W/{etag}"},  # a weak validator never matches
        {"Range": "bytes=0-1", "If-Range": '"another"'},
    ):
        answer = get(**headers)
        assert (answer.status_code, answer.content) == (200, blob), headers
    for spec in ("bytes=-0", f"bytes={len(blob)}-"):
        refused = get(Range=spec)
        assert refused.status_code == 416, spec
        assert refused.headers["Content-Range"] == f"bytes */{len(blob)}"
    part = get(Range="bytes=2-5", **{"If-Range": etag})
    assert (part.status_code, part.content) == (206, blob[2:6])
    tail = get(Range="bytes=-3")
    assert (tail.status_code, tail.content) == (206, blob[-3:])
    assert get(**{"If-None-Match": etag}).status_code == 304
