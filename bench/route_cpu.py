"""Site CPU per client API request, route by route, with sequential requests on an idle site.

    python bench/route_cpu.py --site http://127.0.0.1:8440 --token @site/admin.token \\
        --site-pid PID [--repeat 300]

Sets up a small package, a collection of the registered clients and one deployment through
the admin API (the site must run on this machine: the package source is a temporary
folder), then sends `--repeat` requests of each kind one after another over one kept-alive
connection and divides the site process's CPU time (user + system, /proc) by the count.
The figures are the control plane's cost per request, without queueing; PostgreSQL's own
CPU is not included. docs/performance.md ("Fleet simulator") has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

API = "/api/client/v1"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ONLY: set[str] = set()  # --only: measure these routes only (the others run once)


def measure(pid: int, repeat: int, one: Callable[[int], object], name: str = "") -> float:
    """Milliseconds of site CPU per call of `one`."""
    if ONLY and not any(word in name for word in ONLY):
        repeat = 1
    one(0)  # warm
    time.sleep(0.3)
    before = cpu_seconds(pid)
    for i in range(repeat):
        one(i + 1)
    time.sleep(0.3)  # let the site finish what it does after answering
    return round((cpu_seconds(pid) - before) * 1000 / repeat, 2)


def facts(i: int) -> dict[str, Any]:
    return {
        "hostname": f"cpu-{uuid.uuid4().hex[:8]}-{i}",
        "os": "linux",
        "os_version": "6.1",
        "architecture": "x86_64",
        "ip_addresses": ["127.0.0.1"],
        "agent_version": "bench",
        "properties": {"free_disk_mb": 51200},
    }


def batch(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    base = datetime.now(UTC)
    return [
        {
            "uid": uuid.uuid4().hex,
            "message_id": m,
            "time": (base + timedelta(milliseconds=step)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "deployment_id": deployment["deployment_id"],
            "package_id": deployment["package_id"],
            "dp": "",
            "insertion_strings": [
                deployment["deployment_id"],
                deployment["package_id"],
                "Install",
                *(["0"] if m == 10008 else []),
            ],
            "properties": {
                "source_version": deployment["source_version"],
                **({"exit_code": 0} if m == 10008 else {}),
            },
        }
        for step, m in enumerate((10002, 10035, 10036, 10005, 10008))
    ]


def run(site: str, token: str, pid: int, repeat: int) -> dict[str, float]:
    admin = httpx.Client(base_url=site, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    http = httpx.Client(base_url=site, timeout=60)
    with tempfile.TemporaryDirectory(prefix="qm-route-cpu-") as source:
        (Path(source) / "install.sh").write_text("echo installed\n")
        package_id = admin.post(
            "/api/v1/packages",
            json={
                "name": f"CPU {uuid.uuid4().hex[:6]}",
                "source": source,
                "programs": [{"name": "Install", "command": "sh install.sh"}],
            },
        ).json()["package_id"]
        for _ in range(600):
            shown = admin.get(f"/api/v1/packages/{package_id}").json()  # 404 until its job ends
            if shown.get("distribution") and all(
                d["state"] == "installed" for d in shown["distribution"]
            ):
                break
            time.sleep(0.2)
    clients: list[dict[str, Any]] = []
    results: dict[str, float] = {}
    results["GET /healthz"] = measure(
        pid, repeat, name="GET /healthz", one=lambda i: http.get("/healthz").raise_for_status()
    )

    def register(i: int) -> None:
        reply = http.post(f"{API}/register", json=facts(i))
        assert reply.status_code == 201, reply.text
        clients.append(reply.json())

    results["POST /register"] = measure(pid, repeat, name="POST /register", one=register)
    collection = f"CPU-{uuid.uuid4().hex[:6]}"
    admin.post("/api/v1/collections", json={"name": collection}).raise_for_status()
    admin.post(
        f"/api/v1/collections/{collection}/members",
        json={"client_ids": [c["client_id"] for c in clients]},
    ).raise_for_status()
    admin.post(
        "/api/v1/deployments",
        json={"package_id": package_id, "program": "Install", "collection": collection},
    ).raise_for_status()

    def auth(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {clients[i % len(clients)]['client_secret']}"}

    policy: dict[str, Any] = {}

    def policy_200(i: int) -> None:
        reply = http.get(f"{API}/policy", headers=auth(i))
        assert reply.status_code == 200, reply.text
        policy["etag"] = reply.headers["ETag"]
        policy["deployment"] = reply.json()["signed"]["deployments"][0]

    results["GET /policy → 200"] = measure(pid, repeat, name="GET /policy → 200", one=policy_200)

    def policy_304(i: int) -> None:
        reply = http.get(f"{API}/policy", headers={**auth(i), "If-None-Match": policy["etag"]})
        assert reply.status_code == 304, reply.text

    results["GET /policy → 304"] = measure(pid, repeat, name="GET /policy → 304", one=policy_304)
    package_hash = policy["deployment"]["package_hash"]

    def manifest(i: int) -> None:
        http.get(f"{API}/manifests/{package_hash}", headers=auth(i)).raise_for_status()

    def locations(i: int) -> None:
        reply = http.get(f"{API}/locations/{package_hash}", headers=auth(i))
        assert reply.status_code == 200 and reply.json()["locations"], reply.text

    results["GET /manifests/HASH"] = measure(pid, repeat, name="GET /manifests/HASH", one=manifest)
    results["GET /locations/HASH"] = measure(pid, repeat, name="GET /locations/HASH", one=locations)

    def status(i: int) -> None:
        reply = http.post(
            f"{API}/status", headers=auth(i), json={"messages": batch(policy["deployment"])}
        )
        assert reply.status_code == 200 and reply.json()["accepted"] == 5, reply.text

    results["POST /status (5 messages)"] = measure(
        pid, repeat, name="POST /status (5 messages)", one=status
    )
    results.update(application_policy(admin, http, pid, repeat, package_id))
    return results


def application_policy(
    admin: httpx.Client, http: httpx.Client, pid: int, repeat: int, package_id: str, count: int = 50
) -> dict[str, float]:
    """GET /policy → 200 for a client targeted by `count` package deployments, and for one
    targeted by `count` application deployments whose applications depend on and supersede
    each other (edges point to older applications only, so there is no cycle)."""
    tag = uuid.uuid4().hex[:6]
    apps: list[str] = []
    for i in range(count):
        body: dict[str, Any] = {
            "name": f"CPU app {tag} {i}",
            "package_id": package_id,
            "install": "Install",
            "detect": [f"file:/opt/qm-bench/{i}", f"dpkg:qm-bench-{i}>=1.0"],
            "depends": [apps[-1]] if apps and i % 5 else [],
            "supersedes": [f"{apps[-2]}=upgrade"] if i >= 2 and i % 7 == 0 else [],
        }
        reply = admin.post("/api/v1/applications", json=body)
        assert reply.status_code == 201, reply.text
        apps.append(reply.json()["app_id"])
    secrets = {}
    for kind in ("packages", "applications"):
        collection = f"CPU-{kind}-{tag}"
        admin.post("/api/v1/collections", json={"name": collection}).raise_for_status()
        client = http.post(f"{API}/register", json=facts(0)).json()
        admin.post(
            f"/api/v1/collections/{collection}/members", json={"client_id": client["client_id"]}
        ).raise_for_status()
        for i in range(count):
            if kind == "packages":
                path, body = "/api/v1/deployments", {"package_id": package_id, "program": "Install"}
            else:
                path, body = "/api/v1/application-deployments", {"app_id": apps[i]}
            admin.post(path, json={**body, "collection": collection}).raise_for_status()
        secrets[kind] = client["client_secret"]
    results = {}
    for kind, secret in secrets.items():
        name = f"GET /policy → 200, {count} {kind}"

        def policy(i: int, secret: str = secret) -> None:
            reply = http.get(f"{API}/policy", headers={"Authorization": f"Bearer {secret}"})
            assert reply.status_code == 200 and len(reply.json()["signed"]["deployments"]) == count

        results[name] = measure(pid, repeat, name=name, one=policy)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", required=True)
    parser.add_argument("--token", required=True, help="admin token, or @FILE")
    parser.add_argument("--site-pid", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="measure only routes whose name contains this (repeatable)",
    )
    args = parser.parse_args(argv)
    ONLY.update(args.only)
    token = Path(args.token[1:]).read_text().strip() if args.token.startswith("@") else args.token
    results = run(args.site.rstrip("/"), token, args.site_pid, args.repeat)
    for route, ms in results.items():
        print(f"{route:<44}{ms:>8} ms site CPU per request")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
