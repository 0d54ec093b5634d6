"""A client, a DP and the admin commands behind a real proxy, end to end.

tinyproxy runs on 127.0.0.1; the commands get HTTPS_PROXY or HTTP_PROXY in their
environment, as on a network whose only way out is a proxy. The site was started without
them. Policy, status and content must all go through the proxy: its log lists every tunnel
(https) and every request (http) it carried.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ON_SQLITE
from tests.e2e.processes import SiteServer, run_qm, start_dp, wait_until
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    register_client,
    run_client,
    wait_installed,
)
from tests.e2e.tinyproxy import running_tinyproxy, use_proxies
from tests.integrity.test_tls import TLSSite, _deploy, _state, tls_site  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_pinned_client_behind_a_proxy_installs_over_https(
    tls_site: TLSSite,  # noqa: F811 - the fixture of test_tls
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = tmp_path / "client"
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTPS_PROXY=proxy.url)
        client_id = run_qm(
            "client",
            "register",
            "--home",
            str(client),
            "--site",
            tls_site.url,
            "--ca-file",
            str(tls_site.cert.cert),
        ).stdout.strip()
        package_id, marker = _deploy(tls_site, tmp_path, "proxied", client_id)
        wait_until(lambda: _state(tls_site, package_id, "site") == "installed", "embedded DP")
        run_qm("client", "run", "--home", str(client), "--once")
        assert proxy.connects_to(tls_site.port) >= 3  # registration, admin commands, policy
        assert proxy.connects_to(tls_site.port + 1) >= 1  # content from the embedded DP
    assert marker.read_text() == "proxied over https\n"


@ON_SQLITE
def test_a_client_and_a_dp_behind_a_proxy_over_http(
    site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, marker = tmp_path / "client", tmp_path / "installed" / "proxied.txt"
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url)
        client_id = register_client(site, home)
        dp = start_dp(site, tmp_path, "branch", boundaries=("127.0.0.0/8",))
        try:
            package_id = create_package(site, make_source(tmp_path / "src", marker))
            wait_installed(site, package_id, "branch")
            deploy_to(site, package_id, [client_id], "Lab")
            run_client(home)
        finally:
            dp.stop()
        api, content = f"http://127.0.0.1:{site.port}", f"http://127.0.0.1:{site.port + 1}"
        assert proxy.count(f"POST {api}/api/client/v1/register ") == 1
        assert proxy.count(f"GET {api}/api/client/v1/policy ") >= 1
        assert proxy.count(f"POST {api}/api/dp/v1/enroll ") == 1
        # the DP's pull and the client's download, in packs (small blobs) or blob by blob
        pulled = f"{content}/library/content/"
        assert proxy.count(f"POST {pulled}pack") + proxy.count(f"GET {pulled}sha256/") >= 1
        served = f"http://127.0.0.1:{dp.port}/content/"
        assert proxy.count(f"POST {served}pack") + proxy.count(f"GET {served}sha256/") >= 1
    assert marker.read_text() == "published bytes\n"
