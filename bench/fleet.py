"""Fleet simulator: N clients in one process speaking the real client protocol to a real site.

    python bench/fleet.py --clients 2000 --site http://127.0.0.1:8440 --token @site/admin.token \\
        --hour 60 --database postgresql://postgres@127.0.0.1:5432/qm

What one run does (docs/performance.md has the figures):

1. set-up through the admin API: a small package (its source is a temporary folder, so the
   site must run on this machine), wait until the site's DP holds it, a collection;
2. registration of every client (`POST /api/client/v1/register`) and a first policy poll
   each, which stores the client's ETag;
3. all clients join the collection in bulk (`POST /api/v1/collections/NAME/members` with
   `client_ids`), and one deployment to the collection starts the wave;
4. the wave: each client polls at a random moment of the (compressed) hour with its ETag and
   gets the new policy (200), fetches the manifest and the content locations, and sends its
   five status messages (10002, 10035, 10036, 10005, 10008, each with a uid) in one batch,
   as the client agent's spool does; then it polls again every hour (304 expected);
5. verification: every client's deployment state is `succeeded` (admin API) and every
   status message sent is in the database exactly once (by uid with --database, otherwise
   by (client, message ID) through the admin API).

It reports requests/s, latency p50/p95/p99 per route, status messages ingested per second,
errors, and how late the simulator started requests against its plan (a late start means
the site, or this machine, could not keep up with the offered rate). With several --site
URLs, client i registers through site i mod n and alternates sites on every poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

CLIENT_API = "/api/client/v1"
WAVE_MESSAGES = (10002, 10035, 10036, 10005, 10008)
RETRIES = 6


@dataclass
class FleetConfig:
    sites: list[str]
    token: str
    clients: int
    hour: float = 3600.0  # wall-clock seconds that stand for one hour of polling
    polls_after_wave: int = 1  # hourly polls after the one that brings the deployment
    concurrency: int = 256  # requests in flight at most
    register_concurrency: int = 64
    database: str | None = None  # verify status messages in the database by uid
    resend_fraction: float = 0.01  # share of clients that resend their batch (dedup check)
    member_chunk: int = 25_000
    seed: int = 1
    quiet: bool = False
    site_pids: list[int] = field(default_factory=list)  # to report the site's CPU per phase


@dataclass
class SimClient:
    index: int
    client_id: str = ""
    secret: str = ""
    etag: str = ""
    serial: int = -1
    uids: list[str] = field(default_factory=list)
    done: bool = False
    failed: str = ""


class RequestFailed(Exception):
    pass


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0

    def route(self, name: str) -> dict[str, Any]:
        values = sorted(self.latencies[name])
        if not values:
            return {"count": 0}

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)

        return {
            "count": len(values),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(values[-1] * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1),
        }


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.clients = [SimClient(i) for i in range(config.clients)]
        self.stats = Stats()
        self.rng = random.Random(config.seed)
        self.admin_headers = {"Authorization": f"Bearer {config.token}"}
        self.limit = asyncio.Semaphore(config.concurrency)
        self.http: aiohttp.ClientSession | None = None
        self.phases: dict[str, float] = {}
        self.load: dict[str, list[float]] = {}  # 1, 5, 15 min load average after each phase
        self.site_cpu: dict[str, float] = {}
        self.package_id = self.package_hash = self.deployment_id = ""
        self.collection = f"Fleet-{uuid.uuid4().hex[:8]}"

    def log(self, text: str) -> None:
        if not self.config.quiet:
            print(f"[fleet {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def site_for(self, client: SimClient, turn: int = 0) -> str:
        sites = self.config.sites
        return sites[(client.index + turn) % len(sites)]

    # ------------------------------------------------------------------ HTTP

    async def request(
        self,
        route: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """One request with retries on connection errors and 5xx; latency per attempt."""
        assert self.http is not None
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        for attempt in range(RETRIES):
            async with self.limit:
                started = time.perf_counter()
                try:
                    async with self.http.request(method, url, headers=headers, data=data) as reply:
                        raw = await reply.read()
                        status, reply_headers = reply.status, reply.headers.copy()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status, raw, reply_headers = -1, str(exc).encode(), CIMultiDict()
                elapsed = time.perf_counter() - started
            if status in ok:
                self.stats.latencies[route].append(elapsed)
                return status, (json.loads(raw) if raw else None), reply_headers
            self.stats.errors[f"{route} {status if status >= 0 else 'connection'}"] += 1
            if 0 <= status < 500 and status != 429:
                raise RequestFailed(f"{method} {url}: {status} {raw[:300]!r}")
            await asyncio.sleep(min(0.25 * 2**attempt, 5.0) * (0.5 + self.rng.random()))
        raise RequestFailed(f"{method} {url}: gave up after {RETRIES} attempts")

    async def admin(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)
    ) -> Any:
        url = self.config.sites[0] + path
        return (
            await self.request("admin", method, url, headers=self.admin_headers, body=body, ok=ok)
        )[1]

    # ------------------------------------------------------------------ phases

    async def run(self) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(
            limit=self.config.concurrency, limit_per_host=0, ttl_dns_cache=None, force_close=False
        )
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            self.http = http
            with tempfile.TemporaryDirectory(prefix="qm-fleet-") as source:
                await self._phase("setup", self.set_up(Path(source)))
                await self._phase("register", self.register_all())
                await self._phase("target", self.target_all())
                await self._phase("wave", self.wave())
            verification = await self._phase("verify", self.verify())
        return self.report(verification)

    async def _phase(self, name: str, work: Any) -> Any:
        self.log(f"{name} ...")
        started, cpu = time.perf_counter(), _cpu_seconds(self.config.site_pids)
        result = await work
        self.phases[name] = round(time.perf_counter() - started, 2)
        self.load[name] = [round(x, 2) for x in os.getloadavg()]
        if self.config.site_pids:
            self.site_cpu[name] = round(_cpu_seconds(self.config.site_pids) - cpu, 2)
        self.log(f"{name} done in {self.phases[name]} s")
        return result

    async def set_up(self, source: Path) -> None:
        (source / "install.sh").write_text("echo installed\n")
        (source / "payload.txt").write_text("fleet payload\n")
        created = await self.admin(
            "POST",
            "/api/v1/packages",
            {
                "name": f"Fleet package {self.collection}",
                "source": str(source),
                "programs": [{"name": "Install", "command": "sh install.sh"}],
            },
            ok=(202,),  # a snapshot job (docs/protocol.md, "Jobs")
        )
        self.package_id = created["package_id"]
        deadline = time.monotonic() + 120
        while True:
            job = await self.admin("GET", f"/api/v1/jobs/{created['job_id']}")
            if job["state"] == "failed":
                raise RequestFailed(f"package {self.package_id}: {job['reason']}")
            if job["state"] == "succeeded":
                break
            if time.monotonic() > deadline:
                raise RequestFailed(f"package {self.package_id}: snapshot job not done")
            await asyncio.sleep(0.2)
        while True:
            shown = await self.admin("GET", f"/api/v1/packages/{self.package_id}")
            states = {d["dp"]: d["state"] for d in shown["distribution"]}
            if states and all(s == "installed" for s in states.values()):
                break
            if time.monotonic() > deadline:
                raise RequestFailed(f"package {self.package_id} never installed on a DP: {states}")
            await asyncio.sleep(0.2)
        self.package_hash = shown["versions"][-1]["package_hash"]
        await self.admin("POST", "/api/v1/collections", {"name": self.collection})

    async def register_all(self) -> None:
        gate = asyncio.Semaphore(self.config.register_concurrency)
        started, done = time.perf_counter(), 0

        async def one(client: SimClient) -> None:
            nonlocal done
            async with gate:
                try:
                    await self.register(client)
                    await self.poll(client, turn=0, expect_deployment=False)
                except RequestFailed as exc:
                    client.failed = f"registration: {exc}"
                done += 1
                if done % 5000 == 0:
                    elapsed = time.perf_counter() - started
                    self.log(
                        f"registered {done} clients in {elapsed:.0f} s ({done / elapsed:.1f}/s)"
                    )

        await asyncio.gather(*(one(c) for c in self.clients))

    async def register(self, client: SimClient) -> None:
        facts = {
            "hostname": f"fleet-{client.index:06d}",
            "os": "linux",
            "os_version": "6.1",
            "architecture": "x86_64",
            "ip_addresses": ["127.0.0.1"],
            "agent_version": "fleet-sim",
            "properties": {"free_disk_mb": 51200},
        }
        _, body, _ = await self.request(
            "register",
            "POST",
            self.site_for(client) + CLIENT_API + "/register",
            headers={},
            body=facts,
            ok=(201,),
        )
        client.client_id, client.secret = body["client_id"], body["client_secret"]

    async def poll(self, client: SimClient, turn: int, expect_deployment: bool | None) -> Any:
        headers = {"Authorization": f"Bearer {client.secret}"}
        if client.etag:
            headers["If-None-Match"] = client.etag
        url = self.site_for(client, turn) + CLIENT_API + "/policy"
        status, body, reply_headers = await self.request(
            "policy", "GET", url, headers=headers, ok=(200, 304)
        )
        # The first poll of each client (in the registration phase) is counted apart, so the
        # policy routes show the wave and the hourly polls.
        name = "first poll" if turn == 0 and expect_deployment is False else f"policy {status}"
        self.stats.latencies[name].append(self.stats.latencies["policy"].pop())
        client.etag = reply_headers.get("ETag", client.etag)
        if status == 304:
            if expect_deployment:
                raise RequestFailed("policy answered 304 although a deployment was added")
            return None
        signed = body["signed"]
        if signed["serial"] < client.serial:
            raise RequestFailed(
                f"policy serial went back from {client.serial} to {signed['serial']}"
            )
        client.serial = signed["serial"]
        found = [d for d in signed["deployments"] if d["deployment_id"] == self.deployment_id]
        if expect_deployment is not None and bool(found) != expect_deployment:
            verb = "lacks" if expect_deployment else "has"
            raise RequestFailed(
                f"policy serial {client.serial} {verb} deployment {self.deployment_id}"
            )
        return found[0] if found else None

    async def target_all(self) -> None:
        ids = [c.client_id for c in self.clients if not c.failed]
        for start in range(0, len(ids), self.config.member_chunk):
            await self.admin(
                "POST",
                f"/api/v1/collections/{self.collection}/members",
                {"client_ids": ids[start : start + self.config.member_chunk]},
            )
        created = await self.admin(
            "POST",
            "/api/v1/deployments",
            {"package_id": self.package_id, "program": "Install", "collection": self.collection},
        )
        self.deployment_id = created["deployment_id"]

    async def wave(self) -> None:
        hour, loop = self.config.hour, asyncio.get_running_loop()
        plan = sorted(
            (self.rng.uniform(0, hour) + n * hour, n, client.index)
            for client in self.clients
            if not client.failed
            for n in range(1 + self.config.polls_after_wave)
        )
        start = loop.time()
        tasks: list[asyncio.Task[None]] = []
        for offset, n, index in plan:
            delay = start + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.stats.lateness.append(max(0.0, loop.time() - start - offset))
            client = self.clients[index]
            work = self.run_deployment(client) if n == 0 else self.hourly_poll(client, n)
            tasks.append(asyncio.create_task(work))
        await asyncio.gather(*tasks)

    async def run_deployment(self, client: SimClient) -> None:
        try:
            deployment = await self.poll(client, turn=1, expect_deployment=True)
            headers = {"Authorization": f"Bearer {client.secret}"}
            site = self.site_for(client, 1)
            package_hash = deployment["package_hash"]
            await self.request(
                "manifest", "GET", f"{site}{CLIENT_API}/manifests/{package_hash}", headers=headers
            )
            _, found, _ = await self.request(
                "locations", "GET", f"{site}{CLIENT_API}/locations/{package_hash}", headers=headers
            )
            if not found["locations"]:
                raise RequestFailed("the site named no DP for the package")
            batch = self.status_batch(client, deployment, found["locations"][0]["dp"])
            await self.send_status(client, site, batch)
            if self.rng.random() < self.config.resend_fraction:  # a lost acknowledgement
                await self.send_status(client, site, batch, resend=True)
            client.done = True
        except RequestFailed as exc:
            client.failed = f"deployment: {exc}"

    async def hourly_poll(self, client: SimClient, turn: int) -> None:
        try:
            await self.poll(client, turn=1 + turn, expect_deployment=None)
        except RequestFailed as exc:
            client.failed = client.failed or f"poll: {exc}"

    def status_batch(
        self, client: SimClient, deployment: dict[str, Any], dp: str
    ) -> list[dict[str, Any]]:
        base = datetime.now(UTC)
        ids = [deployment["deployment_id"], deployment["package_id"], deployment["program"]["name"]]
        version = deployment["source_version"]
        extra = {
            10002: [],
            10035: [version, 2, dp],
            10036: [version, 2, 27, dp],
            10005: [deployment["program"]["command"]],
            10008: [0],
        }
        batch = []
        for step, message_id in enumerate(WAVE_MESSAGES):
            uid = uuid.uuid4().hex
            client.uids.append(uid)
            when = (base + timedelta(milliseconds=step)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            properties: dict[str, Any] = {
                "source_version": version,
                "package_hash": deployment["package_hash"],
            }
            if message_id == 10008:
                properties["exit_code"] = 0
            batch.append(
                {
                    "uid": uid,
                    "message_id": message_id,
                    "time": when,
                    "deployment_id": deployment["deployment_id"],
                    "package_id": deployment["package_id"],
                    "dp": dp if message_id in (10035, 10036) else "",
                    "insertion_strings": [str(s) for s in ids + extra[message_id]],
                    "properties": properties,
                }
            )
        return batch

    async def send_status(
        self, client: SimClient, site: str, batch: list[dict[str, Any]], resend: bool = False
    ) -> None:
        headers = {"Authorization": f"Bearer {client.secret}"}
        _, answer, _ = await self.request(
            "status",
            "POST",
            site + CLIENT_API + "/status",
            headers=headers,
            body={"messages": batch},
        )
        self.stats.accepted += answer["accepted"]
        self.stats.duplicates += answer["duplicates"]
        if resend and answer["accepted"]:
            raise RequestFailed(f"a resent batch was accepted again: {answer}")

    # ------------------------------------------------------------------ verification

    async def verify(self) -> dict[str, Any]:
        status = await self.admin("GET", f"/api/v1/deployments/{self.deployment_id}/status?limit=0")
        expected = {f"{c.client_id}:{u}" for c in self.clients for u in c.uids}
        if self.config.database:
            found = await asyncio.to_thread(
                _uids_in_database, self.config.database, self.deployment_id
            )
            method = "database, by uid"
            missing = len(expected - set(found))
            duplicated = len(found) - len(set(found))
            unexpected = len(set(found) - expected)
        else:
            method = "admin API, by (client, message ID)"
            missing, duplicated, unexpected = await self._messages_via_api()
        succeeded = status["counts"].get("succeeded", 0)
        failed_clients = [c for c in self.clients if c.failed or not c.done]
        return {
            "method": method,
            "messages_sent": len(expected),
            "missing": missing,
            "duplicated": duplicated,
            "unexpected": unexpected,
            "targeted": status["targeted"],
            "succeeded": succeeded,
            "counts": {k: v for k, v in status["counts"].items() if v},
            "clients_failed": len(failed_clients),
            "first_failures": [c.failed or "not done" for c in failed_clients[:5]],
            "complete": (
                not failed_clients
                and missing == 0
                and duplicated == 0
                and unexpected == 0
                and succeeded == self.config.clients
                and status["targeted"] == self.config.clients
            ),
        }

    async def _messages_via_api(self) -> tuple[int, int, int]:
        seen: Counter[tuple[str, int]] = Counter()
        before: int | None = None
        while True:
            query = f"/api/v1/status-messages?deployment={self.deployment_id}&limit=1000"
            query += f"&before_id={before}" if before else ""
            page = (await self.admin("GET", query))["messages"]
            if not page:
                break
            for message in page:
                seen[(message["client_id"], message["message_id"])] += 1
            before = min(m["id"] for m in page)
        wanted = {(c.client_id, m) for c in self.clients if c.uids for m in WAVE_MESSAGES}
        missing = sum(1 for key in wanted if seen[key] == 0)
        duplicated = sum(n - 1 for key, n in seen.items() if key in wanted and n > 1)
        unexpected = sum(n for key, n in seen.items() if key not in wanted)
        return missing, duplicated, unexpected

    def report(self, verification: dict[str, Any]) -> dict[str, Any]:
        wave = self.phases.get("wave", 0.0) or 1e-9
        wave_routes = ("policy 200", "policy 304", "manifest", "locations", "status")
        wave_requests = sum(len(self.stats.latencies[r]) for r in wave_routes)
        names = (
            "register",
            "first poll",
            "policy 200",
            "policy 304",
            "manifest",
            "locations",
            "status",
            "admin",
        )
        routes = {name: self.stats.route(name) for name in names}
        lateness = sorted(self.stats.lateness) or [0.0]
        per_client = {
            phase: round(cpu * 1000 / max(1, self.config.clients), 2)
            for phase, cpu in self.site_cpu.items()
        }
        return {
            "config": {k: v for k, v in asdict(self.config).items() if k not in ("token", "quiet")},
            "phases_s": self.phases,
            "site_cpu_s": self.site_cpu,
            "site_cpu_ms_per_client": per_client,
            "load_average": self.load,
            "register_per_s": round(self.config.clients / (self.phases.get("register") or 1e-9), 1),
            "wave_requests_per_s": round(wave_requests / wave, 1),
            "status_messages_accepted": self.stats.accepted,
            "status_duplicates_answered": self.stats.duplicates,
            "status_messages_per_s": round(self.stats.accepted / wave, 1),
            "start_lateness_s": {
                "p50": round(lateness[len(lateness) // 2], 3),
                "p99": round(lateness[int(len(lateness) * 0.99)], 3),
                "max": round(lateness[-1], 3),
            },
            "routes": routes,
            "errors": dict(self.stats.errors),
            "verification": verification,
        }


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _uids_in_database(url: str, deployment_id: str) -> list[str]:
    from sqlalchemy import create_engine, text

    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT uid FROM status_messages WHERE deployment_id = :d "
                    "AND message_id IN (10002, 10035, 10036, 10005, 10008)"
                ),
                {"d": deployment_id},
            )
            return [r[0] for r in rows]
    finally:
        engine.dispose()


def run_fleet(config: FleetConfig) -> dict[str, Any]:
    return asyncio.run(Fleet(config).run())


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"clients: {report['config']['clients']}  hour: {report['config']['hour']} s  "
        f"sites: {len(report['config']['sites'])}",
        f"phases (s): {report['phases_s']}",
        f"site CPU per phase (s): {report['site_cpu_s'] or 'not measured (--site-pid)'}",
        f"site CPU per client per phase (ms): {report['site_cpu_ms_per_client'] or '-'}",
        f"load average (1, 5, 15 min) after each phase: {report['load_average']}",
        f"registrations/s: {report['register_per_s']}   wave requests/s: "
        f"{report['wave_requests_per_s']}   status messages ingested/s: "
        f"{report['status_messages_per_s']} ({report['status_messages_accepted']} accepted, "
        f"{report['status_duplicates_answered']} duplicates answered)",
        f"start lateness against plan (s): {report['start_lateness_s']}",
        "",
        f"{'route':<12}{'count':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for name, r in report["routes"].items():
        if r["count"]:
            lines.append(
                f"{name:<12}{r['count']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}"
                f"{r['p99_ms']:>9}{r['max_ms']:>9}"
            )
    lines += [
        "",
        f"errors: {report['errors'] or 'none'}",
        f"verification: {json.dumps(report['verification'])}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument(
        "--site",
        action="append",
        required=True,
        help="site API URL; repeat for several site processes",
    )
    parser.add_argument("--token", required=True, help="admin token, or @FILE")
    parser.add_argument(
        "--hour",
        type=float,
        default=3600.0,
        help="seconds that stand for one hour of polling (default 3600)",
    )
    parser.add_argument("--polls-after-wave", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--register-concurrency", type=int, default=64)
    parser.add_argument("--database", help="site database URL, to verify messages by uid")
    parser.add_argument("--resend-fraction", type=float, default=0.01)
    parser.add_argument(
        "--site-pid",
        type=int,
        action="append",
        default=[],
        help="process ID of a local site server, to report its CPU time",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    token = Path(args.token[1:]).read_text().strip() if args.token.startswith("@") else args.token
    config = FleetConfig(
        sites=[s.rstrip("/") for s in args.site],
        token=token,
        clients=args.clients,
        hour=args.hour,
        polls_after_wave=args.polls_after_wave,
        concurrency=args.concurrency,
        register_concurrency=args.register_concurrency,
        database=args.database,
        resend_fraction=args.resend_fraction,
        site_pids=args.site_pid,
    )
    report = run_fleet(config)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["verification"]["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
