"""Two `qm site serve` processes from one home on one PostgreSQL database act as one site."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import Daemon, SiteServer, free_port_pair, start_site
from tests.e2e.scenario import create_package, make_source

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]

API = "/api/client/v1"
WAVE = (10002, 10035, 10036, 10005, 10008)


def _second_process(first: SiteServer, base: Path) -> SiteServer:
    """The same home served on other ports; it leaves the embedded DP to the first process."""
    port = free_port_pair()
    daemon = Daemon(
        ["site", "serve", "--home", str(first.home), "--listen", f"127.0.0.1:{port}", "--no-dp"],
        base / "site-serve-2.log",
    )
    second = SiteServer(first.home, port, daemon)
    second.start()
    return second


def _register(site: SiteServer, hostname: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{site.url}{API}/register",
        json={"hostname": hostname, "os": "linux", "ip_addresses": ["127.0.0.1"]},
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _poll(site: SiteServer, secret: str, etag: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}"} | ({"If-None-Match": etag} if etag else {})
    reply = httpx.get(f"{site.url}{API}/policy", headers=headers)
    assert reply.status_code in (200, 304), reply.text
    return reply


def _batch(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    base = datetime.now(UTC)
    return [
        {
            "uid": uuid.uuid4().hex,
            "message_id": message_id,
            "time": (base + timedelta(milliseconds=step)).isoformat().replace("+00:00", "Z"),
            "deployment_id": deployment["deployment_id"],
            "package_id": deployment["package_id"],
            "insertion_strings": [
                deployment["deployment_id"],
                deployment["package_id"],
                "Install",
                *(["0"] if message_id == 10008 else []),
            ],
            "properties": {"source_version": deployment["source_version"]},
        }
        for step, message_id in enumerate(WAVE)
    ]


def _send(site: SiteServer, secret: str, batch: list[dict[str, Any]]) -> dict[str, int]:
    reply = httpx.post(
        f"{site.url}{API}/status",
        json={"messages": batch},
        timeout=60,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_policy_is_consistent_and_status_counts_once_through_either_process(
    tmp_path: Path, postgres_url: str
) -> None:
    first = start_site(tmp_path, database=postgres_url)
    second = _second_process(first, tmp_path)
    sites = (first, second)
    try:
        package_id = create_package(first, make_source(tmp_path / "src", tmp_path / "t.txt"))
        clients = [_register(sites[i % 2], f"pc-{i:02d}") for i in range(12)]

        # Before any deployment: the ETag one process gave is valid at the other.
        etags = {}
        for i, client in enumerate(clients):
            reply = _poll(sites[i % 2], client["client_secret"], "")
            assert reply.status_code == 200 and reply.json()["signed"]["deployments"] == []
            etags[client["client_id"]] = reply.headers["ETag"]
            assert (
                _poll(
                    sites[(i + 1) % 2], client["client_secret"], etags[client["client_id"]]
                ).status_code
                == 304
            )

        # The deployment is made through the second process; polls alternate processes.
        second.api("POST", "/api/v1/collections", json={"name": "Both"})
        second.api(
            "POST",
            "/api/v1/collections/Both/members",
            json={"client_ids": [c["client_id"] for c in clients]},
        )
        deployment_id = second.api(
            "POST",
            "/api/v1/deployments",
            json={"package_id": package_id, "program": "Install", "collection": "Both"},
        )["deployment_id"]
        deployments = {}
        for i, client in enumerate(clients):
            secret, before = client["client_secret"], etags[client["client_id"]]
            fresh = _poll(sites[i % 2], secret, before)
            assert fresh.status_code == 200 and fresh.headers["ETag"] != before
            signed = fresh.json()["signed"]
            assert [d["deployment_id"] for d in signed["deployments"]] == [deployment_id]
            deployments[client["client_id"]] = signed["deployments"][0]
            for site in (sites[(i + 1) % 2], sites[i % 2]):  # the new ETag holds at both
                assert _poll(site, secret, fresh.headers["ETag"]).status_code == 304
            again = _poll(sites[(i + 1) % 2], secret, "")  # a full answer from the other one
            assert again.json()["signed"]["serial"] == signed["serial"]
            assert again.headers["ETag"] == fresh.headers["ETag"]

        # Every batch is sent through both processes at once: each message lands once.
        batches = {c["client_id"]: _batch(deployments[c["client_id"]]) for c in clients}
        jobs = [
            (site, c["client_secret"], batches[c["client_id"]]) for c in clients for site in sites
        ]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: _send(*job), jobs))
        assert sum(a["accepted"] for a in answers) == len(clients) * len(WAVE)
        assert sum(a["duplicates"] for a in answers) == len(clients) * len(WAVE)

        status = first.api("GET", f"/api/v1/deployments/{deployment_id}/status")
        assert status["targeted"] == len(clients)
        assert status["counts"]["succeeded"] == len(clients)
        stored = second.api(
            "GET", "/api/v1/status-messages", params={"deployment": deployment_id, "limit": 1000}
        )["messages"]
        per_client = Counter((m["client_id"], m["message_id"]) for m in stored)
        assert set(per_client.values()) == {1}
        assert len(per_client) == len(clients) * len(WAVE)
    finally:
        second.stop()
        first.stop()


def test_the_second_process_leaves_the_embedded_dp_to_the_first(
    tmp_path: Path, postgres_url: str
) -> None:
    first = start_site(tmp_path, database=postgres_url)
    second = _second_process(first, tmp_path)
    try:
        package_id = create_package(first, make_source(tmp_path / "src", tmp_path / "t.txt"))
        client = _register(second, "pc-dp")
        shown = first.api("GET", f"/api/v1/packages/{package_id}")
        package_hash = shown["versions"][0]["package_hash"]
        for site in (first, second):
            reply = httpx.get(
                f"{site.url}{API}/locations/{package_hash}",
                headers={"Authorization": f"Bearer {client['client_secret']}"},
            )
            assert [(x["dp"], x["url"]) for x in reply.json()["locations"]] == [
                ("site", first.content_url)
            ]
        dps = first.api("GET", "/api/v1/dps")["dps"]
        assert [d["name"] for d in dps] == ["site"]
    finally:
        second.stop()
        first.stop()
