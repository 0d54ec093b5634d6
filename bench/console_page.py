"""Console page times at fleet scale: 100,000 clients in one deployment, 1,000,000 messages.

    python bench/console_page.py                       # seeds a new SQLite site, measures
    python bench/console_page.py --home /tmp/qm-bench  # re-measures an already seeded site
    python bench/console_page.py --database postgresql://postgres@127.0.0.1:5432/qm_bench

What one run does (docs/performance.md, "Console", has the figures):

1. `qm site init`'s code creates a site; one small package is published with the real
   snapshot code, and a collection and a deployment are created through the services;
2. bulk inserts add the clients, their collection membership, their rows in the deployment
   (a realistic mix of states, each with its last status message) and the status messages
   (ten per client, spread over 14 days, as ingest would have stored them);
3. the console runs in-process (FastAPI's app with the console router, a signed-in session
   cookie) and each page is requested --repeat times; the figures are the server's time per
   request (p50 / p95 / max), measured around the ASGI call, so no network is included.

Nothing here is asserted: the goal (under 300 ms) is a figure to watch, not a test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from quartermaster.console import create_console, sessions
from quartermaster.core.program import ProgramSpec
from quartermaster.core.status_catalog import CATALOG
from quartermaster.site.api.app import create_app
from quartermaster.site.content import packages
from quartermaster.site.context import SiteContext
from quartermaster.site.deployments.deployments import create_deployment
from quartermaster.site.models import (
    Account,
    Client,
    CollectionMember,
    DeploymentClient,
    Package,
    StatusMessageRow,
    utcnow,
)
from quartermaster.site.setup import init_site
from quartermaster.site.targeting.membership import create_collection

CHUNK = 20_000
# (state, its last message, share of clients): most succeeded, some still running or failed.
STATES = [
    ("succeeded", 10008, 0.80),
    ("in_progress", 10035, 0.08),
    ("failed", 10006, 0.04),
    ("unknown", None, 0.06),
    ("requirements_not_met", 10018, 0.02),
]
FLOW = (10002, 10035, 10036, 10005, 10008)  # what a successful client reports


def seed(ctx: SiteContext, clients: int, messages: int) -> str:
    """Publish, create the collection and deployment, bulk-insert the fleet; the deployment."""
    source = Path(tempfile.mkdtemp(prefix="qm-bench-src-"))
    (source / "install.sh").write_text("echo installed\n")
    package_id = packages.create_package(
        ctx, "Bench tool", str(source), [ProgramSpec(name="Install", command="sh install.sh")]
    )["package_id"]
    with ctx.db.session() as session:
        collection = create_collection(session, "Fleet")
        deployment_id = create_deployment(session, ctx.site_code, package_id, "Install", "Fleet")
        collection_id = collection.id
    started = time.perf_counter()
    ids = [str(uuid.UUID(int=random.getrandbits(128), version=4)) for _ in range(clients)]
    now = utcnow()
    _bulk(
        ctx,
        Client,
        (
            {
                "client_id": cid,
                "secret_hash": f"{n:064x}",
                "hostname": f"pc-{n:06d}",
                "os": "windows",
                "os_version": "10.0.19045",
                "architecture": "x64",
                "ip_addresses": [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"],
                "agent_version": "0.1.0",
                "properties": {},
                "approval": "approved",
                "rekey_required": False,
                "registered": now - timedelta(days=30),
                "last_policy_request": now - timedelta(minutes=random.randrange(0, 60 * 24 * 10)),
            }
            for n, cid in enumerate(ids)
        ),
    )
    _bulk(
        ctx,
        CollectionMember,
        ({"collection_id": collection_id, "client_id": cid, "reason": "direct"} for cid in ids),
    )
    _bulk(ctx, DeploymentClient, (_roll_up(deployment_id, cid, now) for cid in ids))
    per_client = max(messages // max(clients, 1), 1)
    _bulk(
        ctx, StatusMessageRow, _messages(ids, per_client, messages, deployment_id, package_id, now)
    )
    print(
        f"seeded {clients} clients and {messages} status messages in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return deployment_id


def _roll_up(deployment_id: str, client_id: str, now: Any) -> dict[str, Any]:
    pick, total = random.random(), 0.0
    state, message_id = STATES[-1][:2]
    for candidate, last_message, share in STATES:
        total += share
        if pick <= total:
            state, message_id = candidate, last_message
            break
    return {
        "deployment_id": deployment_id,
        "client_id": client_id,
        "state": state,
        "source_version": 1 if message_id else None,
        "last_message_id": message_id,
        "last_message_time": now - timedelta(minutes=random.randrange(1, 20000))
        if message_id
        else None,
        "detail": CATALOG[message_id].render([deployment_id, "QM100001", "Install", "0"])
        if message_id
        else "",
    }


def _messages(
    ids: list[str], per_client: int, limit: int, deployment_id: str, package_id: str, now: Any
) -> Any:
    sent = 0
    for client_id in ids:
        start = now - timedelta(minutes=random.randrange(60, 60 * 24 * 14))
        for index in range(per_client):
            if sent >= limit:
                return
            message_id = FLOW[index % len(FLOW)] if random.random() > 0.03 else 10006
            entry = CATALOG[message_id]
            strings = [deployment_id, package_id, "Install", "0"]
            sent += 1
            yield {
                "uid": f"{client_id}:{index:04d}",
                "message_id": message_id,
                "severity": entry.severity.value,
                "component": entry.component,
                "client_id": client_id,
                "dp_name": "site" if message_id == 10035 else "",
                "deployment_id": deployment_id,
                "package_id": package_id,
                "insertion_strings": strings,
                "properties": {},
                "text": entry.render(strings),
                "time": start + timedelta(seconds=index * 7),
                "received": start + timedelta(seconds=index * 7 + 1),
            }


def _bulk(ctx: SiteContext, model: Any, rows: Any) -> None:
    """Core executemany in chunks, one transaction per chunk."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            with ctx.db.session() as session:
                session.execute(insert(model), batch)
            batch = []
    if batch:
        with ctx.db.session() as session:
            session.execute(insert(model), batch)


def measure(ctx: SiteContext, deployment_id: str, repeat: int) -> dict[str, list[float]]:
    app = create_app(ctx)
    app.include_router(create_console(ctx))
    http = TestClient(app, base_url="http://127.0.0.1:8440")
    with ctx.db.session() as session:
        admin = session.scalar(select(Account).where(Account.name == "admin"))
        assert admin is not None
        admin_id = admin.id
        client_id = session.scalar(select(Client.client_id).order_by(Client.hostname).limit(1))
        package_id = session.scalar(select(Package.package_id).limit(1))
        newest = session.scalar(select(func.max(StatusMessageRow.time)))
        middle = session.scalar(
            select(Client.client_id)
            .order_by(Client.hostname, Client.client_id)
            .offset(50_000)
            .limit(1)
        )
    cookie = sessions.start(ctx, admin_id).token
    http.cookies.set(sessions.COOKIE, cookie, path="/console")
    older = f"{(newest - timedelta(days=3)).isoformat()}|999999999" if newest else ""
    pages = {
        "deployment page": f"/console/deployments/{deployment_id}",
        "deployment page, failed only": f"/console/deployments/{deployment_id}?state=failed",
        "deployment page, requirements not met": f"/console/deployments/{deployment_id}"
        "?state=requirements_not_met",
        "deployment page, rows after the 50,000th": f"/console/deployments/{deployment_id}"
        f"?after={middle}",
        "deployment status summary (live refresh)": f"/console/deployments/{deployment_id}"
        "?part=summary",
        "status viewer, newest": "/console/status",
        "status viewer, message 10008": "/console/status?message_id=10008",
        "status viewer, severity error": "/console/status?severity=error",
        "status viewer, one deployment": f"/console/status?deployment={deployment_id}",
        "status viewer, one client": f"/console/status?client={client_id}",
        "status viewer, component + last 24 h": "/console/status?component=ContentAccess&range=24h",
        "status viewer, an older page": f"/console/status?before={older}",
        "status viewer, live refresh": "/console/status?live=on&part=rows",
        "clients list": "/console/clients",
        "clients search": "/console/clients?search=pc-0999",
        "overview": "/console/",
        "package page": f"/console/packages/{package_id}",
        "deploy summary (every member, phases)": "/console/deployments/review?package_id="
        f"{package_id}&program=Install&collection=Fleet&phases=5%25,25%25,100%25",
        "collection page": "/console/collections/Fleet",
        "rule preview (every client)": "/console/collections/check-rule?rule="
        "hostname%20like%20%22pc-0999%25%22",
    }
    times: dict[str, list[float]] = {}
    for name, path in pages.items():
        answer = http.get(path)  # warm-up, and a check that the page works
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.text[:300]}")
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            http.get(path)
            samples.append((time.perf_counter() - started) * 1000)
        times[name] = samples
        _report_line(name, samples)
    http.close()
    return times


def _report_line(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"{name:45s} p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   "
        f"max {ordered[-1]:7.1f} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="a site home (seeded when new)")
    parser.add_argument("--database", help="postgresql://... (default: SQLite in the home)")
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="qm-bench-console-")) / "site"
    if not (home / "config.json").exists():
        init_site(home, "QM1", "Console benchmark", args.database)
        ctx = SiteContext.open(home)
        deployment_id = seed(ctx, args.clients, args.messages)
    else:
        ctx = SiteContext.open(home)
        with ctx.db.session() as session:
            deployment_id = session.scalars(select(DeploymentClient.deployment_id).limit(1)).one()
    print(f"site home {home}; {args.repeat} requests per page", flush=True)
    try:
        measure(ctx, deployment_id, args.repeat)
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
