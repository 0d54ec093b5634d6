"""TLS on both planes of the site and on a DP, with the CA pinned by clients and DPs.

A self-signed certificate for 127.0.0.1 is made here; `qm site serve` and `qm dp serve` use
it. A client registered with `--ca-file` installs over https from the embedded DP and from a
DP serving https; a client pinned to another certificate is refused and registers nothing.
Each package carries a file large enough for the two-thread receive paths (the client's
mapped one, the DP's buffered one) to run over TLS.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import Daemon, free_port, free_port_pair, run_qm, wait_until
from tests.e2e.scenario import make_source
from tests.integrity.certs import Certificate, self_signed

pytestmark = pytest.mark.e2e

LARGE = 9 * 1024 * 1024  # above core.blob_transfer.PIPELINE_MIN


@dataclass
class TLSSite:
    home: Path
    port: int
    cert: Certificate
    daemon: Daemon

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Admin commands trust the certificate through SSL_CERT_FILE (docs/security.md)."""
        token = (self.home / "admin.token").read_text().strip()
        return {"QM_SITE": self.url, "QM_TOKEN": token, "SSL_CERT_FILE": str(self.cert.cert)}

    def qm(self, *args: str) -> Any:
        return run_qm(*args, env=self.env)

    def api(self, path: str) -> Any:
        token = (self.home / "admin.token").read_text().strip()
        return httpx.get(
            self.url + path,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(self.cert.cert)),
            timeout=30,
        ).json()


def _up(daemon: Daemon, url: str, cert: Certificate) -> bool:
    daemon.check_alive()  # a process that died says why, at once
    return _answers(url, cert)


def _answers(url: str, cert: Certificate) -> bool:
    context = ssl.create_default_context(cafile=str(cert.cert))
    try:
        return httpx.get(f"{url}/healthz", verify=context, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def tls_site(tmp_path: Path) -> Any:
    cert = self_signed(tmp_path / "certs", "site")
    home, port = tmp_path / "site", free_port_pair()
    run_qm("site", "init", "--home", str(home), "--listen", f"127.0.0.1:{port}")
    config = json.loads((home / "config.json").read_text())  # LARGE stays one blob (pipelined)
    (home / "config.json").write_text(json.dumps({**config, "chunk_threshold": 1 << 40}))
    daemon = Daemon(
        [
            "site",
            "serve",
            "--home",
            str(home),
            "--tls-cert",
            str(cert.cert),
            "--tls-key",
            str(cert.key),
        ],
        tmp_path / "site-serve.log",
    )
    site = TLSSite(home, port, cert, daemon)
    daemon.start()
    try:
        wait_until(lambda: _up(daemon, site.url, cert), "site API (https)")
        wait_until(
            lambda: _up(daemon, f"https://127.0.0.1:{port + 1}", cert), "site content (https)"
        )
        yield site
    finally:
        daemon.stop()


def _state(site: TLSSite, package_id: str, dp: str, version: int = 1) -> str:
    rows = site.api(f"/api/v1/packages/{package_id}")["distribution"]
    return next((r["state"] for r in rows if (r["dp"], r["source_version"]) == (dp, version)), "")


def _deploy(site: TLSSite, tmp_path: Path, name: str, client_id: str) -> tuple[str, Path]:
    marker = tmp_path / "installed" / f"{name}.txt"
    source = make_source(
        tmp_path / f"src-{name}",
        marker,
        f"{name} over https\n",
        extra=f'test "$(wc -c < large.bin)" -eq {LARGE}',
    )
    (source / "large.bin").write_bytes(os.urandom(LARGE))
    package_id = site.qm(
        "package",
        "create",
        "--name",
        name,
        "--source",
        str(source),
        "--program",
        "Install=sh install.sh",
    ).stdout.strip()
    site.qm("collection", "create", name)
    site.qm("collection", "add", name, client_id)
    site.qm(
        "deploy", "create", "--package", package_id, "--program", "Install", "--collection", name
    )
    return package_id, marker


def _downloaded_from(site: TLSSite, client_id: str) -> list[str]:
    rows = site.qm("status", "messages", "--client", client_id, "--json").json()["messages"]
    return [m["insertion_strings"][6] for m in rows if m["message_id"] == 10036]


def test_a_pinned_client_installs_over_https_from_the_site_and_a_tls_dp(
    tls_site: TLSSite, tmp_path: Path
) -> None:
    client = tmp_path / "client"
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
    config = json.loads((client / "client.json").read_text())
    assert config["ca_file"] == "site-ca.pem"
    assert (client / "site-ca.pem").read_bytes() == tls_site.cert.cert.read_bytes()

    first, first_marker = _deploy(tls_site, tmp_path, "first", client_id)
    wait_until(lambda: _state(tls_site, first, "site") == "installed", "embedded DP copy")
    run_qm("client", "run", "--home", str(client), "--once")
    assert first_marker.read_text() == "first over https\n"
    assert _downloaded_from(tls_site, client_id) == ["site"]

    dp_cert = self_signed(tmp_path / "certs", "dp")
    bundle = tmp_path / "certs" / "bundle.pem"  # the client trusts the site and the DP
    bundle.write_bytes(tls_site.cert.cert.read_bytes() + dp_cert.cert.read_bytes())
    run_qm(
        "client",
        "register",
        "--home",
        str(client),
        "--site",
        tls_site.url,
        "--ca-file",
        str(bundle),
        "--force",
    )
    client_id = json.loads((client / "client.json").read_text())["client_id"]
    port = free_port()
    token = tls_site.qm(
        "dp",
        "add",
        "--name",
        "branch",
        "--url",
        f"https://127.0.0.1:{port}",
        "--boundary",
        "127.0.0.0/8",
    ).stdout.strip()
    dp = Daemon(
        [
            "dp",
            "serve",
            "--home",
            str(tmp_path / "dp"),
            "--site",
            tls_site.url,
            "--token",
            token,
            "--listen",
            f"127.0.0.1:{port}",
            "--poll-interval",
            "1",
            "--ca-file",
            str(tls_site.cert.cert),
            "--tls-cert",
            str(dp_cert.cert),
            "--tls-key",
            str(dp_cert.key),
        ],
        tmp_path / "dp.log",
    )
    dp.start()
    try:
        wait_until(lambda: _up(dp, f"https://127.0.0.1:{port}", dp_cert), "DP (https)")
        second, second_marker = _deploy(tls_site, tmp_path, "second", client_id)
        wait_until(
            lambda: _state(tls_site, second, "branch") == "installed",
            "the DP to pull over https from the site's library",
        )
        run_qm("client", "run", "--home", str(client), "--once")
    finally:
        dp.stop()
    assert second_marker.read_text() == "second over https\n"
    assert _downloaded_from(tls_site, client_id)[-1] == "branch"
    identity = json.loads((tmp_path / "dp" / "dp.json").read_text())
    assert identity["ca_file"] == "site-ca.pem"


def test_a_client_pinned_to_another_ca_is_refused(tls_site: TLSSite, tmp_path: Path) -> None:
    other = self_signed(tmp_path / "certs", "other")
    client = tmp_path / "client"
    result = run_qm(
        "client",
        "register",
        "--home",
        str(client),
        "--site",
        tls_site.url,
        "--ca-file",
        str(other.cert),
        check=False,
    )
    assert result.code != 0
    assert "TLS certificate this client does not trust" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (client / "client.json").exists()
    clients = tls_site.qm("client", "list", "--json").json()
    assert clients["clients"] == [], clients


def test_a_client_pinned_at_registration_refuses_a_site_that_changed_certificate(
    tls_site: TLSSite, tmp_path: Path
) -> None:
    client = tmp_path / "client"
    run_qm(
        "client",
        "register",
        "--home",
        str(client),
        "--site",
        tls_site.url,
        "--ca-file",
        str(tls_site.cert.cert),
    )
    impostor = self_signed(tmp_path / "certs", "impostor")
    tls_site.daemon.stop()
    tls_site.daemon.args[-3:] = [str(impostor.cert), "--tls-key", str(impostor.key)]
    tls_site.daemon.start()
    wait_until(
        lambda: _up(tls_site.daemon, tls_site.url, impostor), "site with another certificate"
    )
    result = run_qm("client", "run", "--home", str(client), "--once", check=False)
    assert result.code != 0
    assert "does not trust" in result.stderr and "re-register" in result.stderr, result.stderr
