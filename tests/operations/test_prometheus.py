"""The real Prometheus (Debian's `prometheus`) scrapes a real site on 127.0.0.1, as
docs/operations.md configures it, and answers every query of docs/grafana-dashboard.json."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import SiteServer, free_port, start_site, wait_until
from tests.operations.test_metrics import DASHBOARD
from tests.required_programs import program

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    server = start_site(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def scrape_config(site: SiteServer, token_file: Path) -> str:
    """The scrape config of docs/operations.md, with this test's ports: the API's /metrics
    and the content port's (embedded DP), from this host (no token), and the API once more
    with an account token, as a Prometheus on another host scrapes."""
    api = site.url.removeprefix("http://")
    content = site.content_url.removeprefix("http://")
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: qm-site
    static_configs:
      - targets: ["{api}"]
  - job_name: qm-site-content
    static_configs:
      - targets: ["{content}"]
  - job_name: qm-site-with-token
    authorization:
      credentials_file: {token_file}
    static_configs:
      - targets: ["{api}"]
"""


def test_prometheus_scrapes_the_site_and_answers_the_dashboard(
    site: SiteServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "metrics.token"
    site.qm("account", "create", "prometheus", "--role", "viewer")  # read-only, tokens only
    token = site.qm("token", "create", "--account", "prometheus", "--name", "scrape").stdout
    token_file.write_text(token.strip() + "\n")
    site.qm("package", "list")  # some traffic to count
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(site, token_file))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        prometheus = subprocess.Popen(
            [
                program("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def query(expr: str) -> list[dict[str, Any]]:
            answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
            body = answer.json()
            assert body["status"] == "success", (expr, body)
            return list(body["data"]["result"])

        def healthy() -> bool:
            assert prometheus.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{base}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "Prometheus ready", timeout=60)
        up = wait_until(
            lambda: (r := query("up == 1")) and len(r) == 3 and r,
            "all three targets scraped and up",
            timeout=60,
        )
        assert {r["metric"]["job"] for r in up} == {
            "qm-site",
            "qm-site-content",
            "qm-site-with-token",
        }
        packages = wait_until(
            lambda: query(
                'qm_site_http_requests_total{job="qm-site",route="/api/v1/packages",'
                'method="GET",status="200"}'
            ),
            "the package list request in Prometheus",
            timeout=60,
        )
        assert float(packages[0]["value"][1]) >= 1
        assert query('qm_site_db_pool_connections{state="size"}')
        assert query("qm_dp_active_downloads") and query("qm_dp_validations_total")
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel["targets"]:
                query(target["expr"])  # valid PromQL over these series
    finally:
        prometheus.terminate()
        prometheus.wait(30)
