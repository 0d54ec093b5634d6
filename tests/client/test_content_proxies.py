"""A client behind a proxy downloads through it, and falls back when the proxy refuses.

The proxy is a real tinyproxy on 127.0.0.1 (or a port nothing listens on), named the way an
administrator names it: HTTP_PROXY and NO_PROXY in the agent's environment.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from quartermaster.client.local_state import Result
from tests.e2e.processes import free_port
from tests.e2e.tinyproxy import running_tinyproxy, use_proxies

from .conftest import ClientWorld, deployment_entry
from .servers import StoreServer, write_store

DATA = bytes(range(256)) * 300


def port_of(server: StoreServer) -> int:
    return int(urlsplit(server.url).port or 0)


def direct_url(server: StoreServer) -> str:
    """The same DP, named `localhost`: a name NO_PROXY lists."""
    return f"http://localhost:{port_of(server)}"


def test_content_comes_through_the_proxy_the_environment_names(
    world: ClientWorld, dp: StoreServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = world.deploy(
        dp,
        {"data.bin": DATA, "setup.sh": b"echo setup\n"},
        command=world.keep_what_the_program_saw(),
    )
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url)
        world.run()
        assert proxy.gets_from(port_of(dp), "/content/sha256/") == len(package.blobs)
    assert world.site.ids()[-1] == 10008
    assert (world.seen() / "data.bin").read_bytes() == DATA


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*", "PORT"])
def test_dps_listed_in_no_proxy_are_reached_directly(
    world: ClientWorld,
    dp: StoreServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    world.deploy(dp)
    no_proxy = f"127.0.0.1:{port_of(dp)}" if no_proxy == "PORT" else no_proxy
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url, NO_PROXY=no_proxy)
        world.run()
        assert proxy.requests() == []
    assert world.site.ids()[-1] == 10008
    assert len(dp.blob_requests()) == 1


def test_a_proxy_that_refuses_connections_is_named_and_the_next_dp_is_used(
    world: ClientWorld, dp: StoreServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    package = world.package({"data.bin": DATA})
    with StoreServer(write_store(tmp_path / "behind", package.blobs)) as behind:
        write_store(dp.root, package.blobs)
        world.serve_from(package, ("dp-behind-proxy", behind.url), ("dp-direct", direct_url(dp)))
        world.publish(deployment_entry(package))
        use_proxies(monkeypatch, HTTP_PROXY=dead_proxy, NO_PROXY="localhost")
        world.run()
        assert behind.blob_requests() == []
    [failed] = world.site.messages(10050)
    assert failed["dp"] == "dp-behind-proxy"
    reason = failed["insertion_strings"][4]
    assert f"through the proxy {dead_proxy} (from HTTP_PROXY)" in reason
    assert "refused" in reason.lower()
    assert "dp-direct" in world.site.messages(10036)[0]["insertion_strings"][6]
    assert world.site.ids()[-1] == 10008
    assert f"the proxy {dead_proxy}" in world.log("cas")


def test_a_proxy_that_denies_this_computer_is_named_and_the_next_dp_is_used(
    world: ClientWorld, dp: StoreServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = world.package({"data.bin": DATA})
    with (
        StoreServer(write_store(tmp_path / "behind", package.blobs)) as behind,
        running_tinyproxy(tmp_path / "proxy", deny=True) as proxy,
    ):
        write_store(dp.root, package.blobs)
        world.serve_from(package, ("dp-behind-proxy", behind.url), ("dp-direct", direct_url(dp)))
        world.publish(deployment_entry(package, command=world.keep_what_the_program_saw()))
        use_proxies(monkeypatch, http_proxy=proxy.url, no_proxy="localhost")
        world.run()
        assert behind.blob_requests() == []
    [failed] = world.site.messages(10050)
    reason = failed["insertion_strings"][4]
    assert f"through the proxy {proxy.url} (from http_proxy)" in reason
    assert "HTTP 403" in reason
    assert world.site.ids()[-1] == 10008
    assert world.state().result != Result.CONTENT_UNAVAILABLE
    assert (world.seen() / "data.bin").read_bytes() == DATA
