"""`/metrics` on the site (control plane) and on DP content servers, `/readyz`, who may read
them, and the Grafana dashboard's queries against the metrics that really exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.setup import init_site
from tests.dp.dp_fixtures import ContentServer, put_raw_blob, request
from tests.e2e.site_templates import with_migrated_sqlite
from tests.security.conftest import SiteApi

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def family_names(exposition: str) -> set[str]:
    """Every series name of an exposition, also of families with no samples yet."""
    names = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    return names | {name for name, _ in samples(exposition)}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SiteContext, TestClient]]:
    root = tmp_path / "site"
    home = init_site(with_migrated_sqlite(root), "QM1", "metrics tests")
    ctx = SiteContext.open(root)
    client = TestClient(create_app(ctx), client=("127.0.0.1", 50000))
    client.headers["X-Test-Admin"] = home.admin_token_path.read_text().strip()
    try:
        yield ctx, client
    finally:
        ctx.close()


def _admin(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.headers['X-Test-Admin']}"}


def test_site_metrics_count_requests_polls_and_status_messages(
    site: tuple[SiteContext, TestClient], tmp_path: Path
) -> None:
    ctx, http = site
    api = SiteApi(tmp_path / "site", ctx, http, {"admin": http.headers["X-Test-Admin"]})
    _, secret, _ = api.register_client()
    auth = {"Authorization": f"Bearer {secret}"}
    first = http.get("/api/client/v1/policy", headers=auth)
    again = http.get(
        "/api/client/v1/policy", headers={**auth, "If-None-Match": first.headers["ETag"]}
    )
    assert (first.status_code, again.status_code) == (200, 304)
    message = {
        "uid": "00000000-0000-4000-8000-00000000aaaa",
        "message_id": 10002,
        "severity": "informational",
        "component": "policyagent",
        "time": "2026-01-01T00:00:00Z",
        "text": "hello",
    }
    for _ in range(2):  # the second time, a duplicate
        sent = http.post("/api/client/v1/status", headers=auth, json={"messages": [message]})
        assert sent.status_code == 200, sent.text
    assert http.get("/api/v1/packages/QM1FFFFF", headers=_admin(http)).status_code == 404

    scraped = http.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    values = samples(scraped.text)

    def value(name: str, **labels: str) -> float:
        return values.get((name, frozenset(labels.items())), 0.0)

    assert value("qm_site_policy_polls_total", answer="full") == 1
    assert value("qm_site_policy_polls_total", answer="not_modified") == 1
    assert value("qm_site_status_messages_total", outcome="accepted") == 1
    assert value("qm_site_status_messages_total", outcome="duplicate") == 1
    route = "/api/v1/packages/{package_id}"  # the template, never the raw path
    assert value("qm_site_http_requests_total", method="GET", route=route, status="404") == 1
    assert not any("QM1FFFFF" in str(labels) for _, labels in values)
    assert (
        value(
            "qm_site_http_request_duration_seconds_count",
            method="GET",
            route="/api/client/v1/policy",
            status="304",
        )
        == 1
    )
    assert value("qm_site_db_pool_connections", state="size") > 0
    assert value("qm_site_dp_content_versions", dp="site", state="pending") == 0
    assert {"qm_site_jobs", "qm_site_dp_content_versions"} <= family_names(scraped.text)


def test_metrics_need_a_token_unless_asked_directly_from_this_host(
    site: tuple[SiteContext, TestClient],
) -> None:
    ctx, local = site
    stranger = TestClient(local.app, client=("192.0.2.7", 40000))
    refused = stranger.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert "qm_site" not in refused.text
    viewer_token = SiteApi(Path("."), ctx, local, {"admin": local.headers["X-Test-Admin"]})
    token = viewer_token.add_account("grafana", "viewer")
    let_in = stranger.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert let_in.status_code == 200 and "qm_site_http_requests_total" in let_in.text
    wrong = stranger.get("/metrics", headers={"Authorization": "Bearer qmt_not-a-token"})
    assert wrong.status_code == 401
    # a reverse proxy on this host relays strangers: relayed requests are not "local"
    relayed = local.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
    assert relayed.status_code == 401
    assert local.get("/metrics", headers={"Forwarded": "for=192.0.2.7"}).status_code == 401
    # a client or DP credential is no account token
    assert stranger.get("/metrics", headers={"Authorization": "Bearer qmc_x"}).status_code == 401


def test_readyz_says_why_the_process_should_not_take_traffic(
    site: tuple[SiteContext, TestClient],
) -> None:
    ctx, http = site
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []
    ctx.embedded_dp_state = "failed"
    failed = http.get("/readyz")
    assert failed.status_code == 503
    assert failed.json()["problems"] == [
        "embedded DP failed (see `qm site status` and the site's log)"
    ]
    ctx.embedded_dp_state = "off"
    with ctx.db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    behind = http.get("/readyz").json()
    assert behind["status"] == "not_ready"
    assert "database schema at 0006" in behind["problems"][0]
    assert "qm site upgrade" in behind["problems"][0]
    assert TestClient(http.app, client=("192.0.2.7", 1)).get("/readyz").status_code == 503


def test_readyz_reports_an_unreachable_database_without_its_details(tmp_path: Path) -> None:
    root = tmp_path / "site"
    init_site(with_migrated_sqlite(root), "QM1", "metrics tests")
    ctx = SiteContext.open(root)
    ctx.close()
    (root / "site.db").unlink()
    (root / "site.db").mkdir()  # a folder where the database file was: cannot be opened
    ctx = SiteContext.open(root)
    try:
        answer = TestClient(create_app(ctx)).get("/readyz")
    finally:
        ctx.close()
    assert answer.status_code == 503
    assert answer.json()["problems"] == ["database unreachable"]
    assert str(root) not in answer.text


def test_a_dp_counts_bytes_and_downloads_and_keeps_metrics_local(tmp_path: Path) -> None:
    from quartermaster.dp.content_server import StoreMount

    data = b"blob bytes " * 1000
    sha = put_raw_blob(tmp_path / "store", data)
    server = ContentServer([StoreMount("", tmp_path / "store")]).start()
    try:
        path = f"/content/sha256/{sha[:2]}/{sha}"
        assert request(server.port, path)[0] == 200
        assert request(server.port, path, headers={"Range": "bytes=0-99"})[0] == 206
        assert request(server.port, f"/content/sha256/{sha[:2]}/{'0' * 62}{sha[:2]}")[0] == 404
        status, headers, body = request(server.port, "/metrics")
        relayed = request(server.port, "/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
    finally:
        server.stop()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    values = samples(body.decode())
    assert values[("qm_dp_served_bytes_total", frozenset({("store", "/")}))] == len(data) + 100
    route = "/content/sha256/{shard}/{digest}"
    labels = frozenset({("route", route), ("status", "200")})
    assert values[("qm_dp_http_requests_total", labels)] == 1
    assert values[("qm_dp_active_downloads", frozenset())] == 0  # all answers were sent
    assert values[("qm_dp_validations_total", frozenset({("result", "ok")}))] == 0
    assert relayed[0] == 401 and b"qm_dp" not in relayed[2]


def test_the_dashboard_is_grafana_json_whose_queries_name_real_metrics(
    site: tuple[SiteContext, TestClient], tmp_path: Path
) -> None:
    """Every metric a panel queries is one the site or a DP exposes (names checked here;
    tests/operations/test_prometheus.py runs every query in a real Prometheus)."""
    from quartermaster.dp.content_server import StoreMount

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30 and dashboard["panels"]
    _, http = site
    http.get("/healthz")  # a histogram has series once it observed something
    exposed = family_names(http.get("/metrics").text)
    server = ContentServer([StoreMount("", tmp_path / "store")]).start()
    try:
        exposed |= family_names(request(server.port, "/metrics")[2].decode())
    finally:
        server.stop()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["type"] == "prometheus"
        for target in panel["targets"]:
            for name in dashboard_metric_names(target["expr"]):
                assert name in exposed, f"panel {panel['title']!r} queries unknown {name}"


def dashboard_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (`x_total`, `x_bucket`, a gauge's name)."""
    names = set(re.findall(r"\bqm_[a-z_]+", expr))
    assert names, f"no qm_ metric in {expr!r}"
    return names
