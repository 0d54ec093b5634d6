"""The site link over real HTTP: headers it sends, and how it reads the site's answers."""

from __future__ import annotations

import socket

import pytest

from quartermaster.client.site_link import SiteLink, SiteUnreachable
from quartermaster.core.errors import NotFound, Unauthorized

from .servers import CannedServer


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_site_is_a_clear_error_with_a_hint() -> None:
    with (
        SiteLink(closed_port_url(), "qmc_x", timeout=5) as link,
        pytest.raises(SiteUnreachable) as caught,
    ):
        link.policy("")
    assert "cannot reach the site" in caught.value.message
    assert "client.json" in caught.value.hint


def test_the_policy_request_sends_the_secret_and_the_last_etag() -> None:
    with (
        CannedServer(lambda m, p, h: (304, {"ETag": '"7"'}, None)) as site,
        SiteLink(site.url, "qmc_secret") as link,
    ):
        answer = link.policy('"7"')
    _, path, headers, _ = site.requests[0]
    assert path == "/api/client/v1/policy"
    assert headers["Authorization"] == "Bearer qmc_secret"
    assert headers["If-None-Match"] == '"7"'
    assert answer.not_modified and answer.etag == '"7"'


def test_a_refused_secret_tells_the_user_to_register_again() -> None:
    body = {"error": {"code": "unauthorized", "message": "unknown client", "hint": ""}}
    with (
        CannedServer(lambda m, p, h: (401, {}, body)) as site,
        SiteLink(site.url, "qmc_old") as link,
        pytest.raises(Unauthorized) as caught,
    ):
        link.policy("")
    assert "--force" in caught.value.hint


def test_the_sites_error_shape_becomes_a_typed_error() -> None:
    body = {
        "error": {
            "code": "not_found",
            "message": "no package version has hash x",
            "hint": "check the package hash",
        }
    }
    with (
        CannedServer(lambda m, p, h: (404, {}, body)) as site,
        SiteLink(site.url, "qmc") as link,
        pytest.raises(NotFound) as caught,
    ):
        link.manifest("a" * 64)
    assert "no package version" in caught.value.message
    assert caught.value.hint == "check the package hash"


def test_locations_keep_the_sites_order() -> None:
    body = {
        "package_hash": "a" * 64,
        "locations": [
            {"dp": "near", "url": "http://127.0.0.1:1", "kind": "boundary"},
            {"dp": "far", "url": "http://127.0.0.1:2", "kind": "fallback"},
        ],
    }
    with CannedServer(lambda m, p, h: (200, {}, body)) as site, SiteLink(site.url, "qmc") as link:
        found = link.locations("a" * 64)
    assert [(loc.dp, loc.kind) for loc in found] == [("near", "boundary"), ("far", "fallback")]


def test_status_is_posted_as_one_batch() -> None:
    with (
        CannedServer(lambda m, p, h: (200, {}, {"accepted": 2, "duplicates": 0})) as site,
        SiteLink(site.url, "qmc") as link,
    ):
        link.send_status([{"uid": "a" * 32}, {"uid": "b" * 32}])
    method, path, _, body = site.requests[0]
    assert (method, path) == ("POST", "/api/client/v1/status")
    assert [m["uid"] for m in body["messages"]] == ["a" * 32, "b" * 32]
