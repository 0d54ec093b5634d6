"""Detection on a client: 200 applications × 3 rules, all compliant, in one agent run.

    python bench/detection.py [--apps 200] [--repeats 5]

Each application has three rules (`all`): a file exists, the file's SHA-256, and a dpkg
package that is installed on this machine. One agent run (policy verified, every
deployment detected, 1001 spooled for each) is timed end to end with a stand-in site
API that serves policy only: no DP exists, so any download would fail, and the bytes
downloaded (from the 10036 messages and the cache) must be 0. Baselines in the same run:
`dpkg-query -W` once and `sha256sum` over the same files, as separate processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from quartermaster.client.agent import Agent
from quartermaster.client.home import ClientConfig, ClientHome
from quartermaster.client.machine_facts import MachineFacts
from quartermaster.client.site_link import PolicyAnswer
from quartermaster.client.timestamps import format_utc
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.signing import SigningKey


class PolicyOnlySite:
    """Serves one signed policy; any content request is an error (nothing may download)."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        self.envelope = envelope
        self.poll_after = None
        self.received: list[dict[str, Any]] = []

    def policy(self, etag: str) -> PolicyAnswer:
        return PolicyAnswer(self.envelope, '"1"')

    def manifest(self, package_hash: str) -> Any:
        raise AssertionError("a compliant run must not ask for a manifest")

    def locations(self, package_hash: str) -> list[Any]:
        raise AssertionError("a compliant run must not look for content")

    def inventory(self, facts: dict[str, Any]) -> bool:
        return False

    def rekey(self) -> str:
        raise AssertionError("no rekey")

    def roots(self, after: int) -> list[Any]:
        return []

    def trust_log(self, after: int, upto: int) -> list[Any]:
        return []

    def send_status(self, messages: list[dict[str, Any]]) -> dict[str, int]:
        self.received.extend(messages)
        return {"accepted": len(messages), "duplicates": 0}


def _program() -> dict[str, Any]:
    return {
        "name": "Install",
        "command": "exit 1",
        "run_context": "system",
        "max_runtime": 60,
        "requirements": {},
    }


def build(root: Path, count: int) -> tuple[ClientHome, PolicyOnlySite, list[Path]]:
    key = SigningKey.generate()
    home = ClientHome(root / "home")
    client_id = str(uuid.uuid4())
    home.save_config(ClientConfig(client_id, "http://127.0.0.1:9", "QM1", [key.public.to_dict()]))
    home.write_secret("qmc_bench")
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${binary:Package}\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    files, apps, deployments = [], {}, []
    now = datetime.now(UTC)
    for i in range(count):
        path = root / "files" / f"app-{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = f"application {i}\n".encode() * 64
        path.write_bytes(data)
        files.append(path)
        app_id, package_hash = f"QM1{0x40000 + i:05X}", sha256_bytes(data + b"pkg")
        rules = [
            f"file:{path}",
            f"file:{path} sha256={sha256_bytes(data)}",
            f"dpkg:{installed[i % len(installed)]}",
        ]
        apps[app_id] = {
            "app_id": app_id,
            "name": f"App {i}",
            "revision": 1,
            "package_id": "QM100001",
            "package_name": "P",
            "source_version": 1,
            "package_hash": package_hash,
            "install": _program(),
            "uninstall": None,
            "run_as": "system",
            "reevaluate": 86400,
            "detection": {"combine": "all", "rules": rules},
            "depends": [],
            "supersedes": [],
        }
        deployments.append(
            {
                "deployment_id": f"QM1{0x20000 + i:05X}",
                "package_id": "QM100001",
                "package_name": "P",
                "source_version": 1,
                "package_hash": package_hash,
                "program": _program(),
                "available": format_utc(now - timedelta(days=1)),
                "deadline": format_utc(now - timedelta(hours=1)),
                "expires": None,
                "rerun": "if-failed",
                "state": "active",
                "application": {"app_id": app_id, "purpose": "install"},
            }
        )
    payload = {
        "type": "policy",
        "client_id": client_id,
        "site_code": "QM1",
        "serial": 1,
        "issued": format_utc(now - timedelta(minutes=1)),
        "expires": format_utc(now + timedelta(days=7)),
        "poll_interval": 3600,
        "deployments": deployments,
        "applications": apps,
    }
    return home, PolicyOnlySite(key.envelope(payload)), files


def one_run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="qm-bench-detect-") as folder:
        home, site, files = build(Path(folder), count)
        facts = MachineFacts(
            "bench",
            platform.system().lower(),
            "1",
            platform.machine(),
            ["127.0.0.1"],
            free_disk_mb=100_000,
        )
        started = time.perf_counter()
        Agent(home, site, facts=facts).run_once()  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        started = time.perf_counter()  # the next run: a re-evaluation within the cycle
        Agent(home, site, facts=facts).run_once()  # type: ignore[arg-type]
        again = time.perf_counter() - started
        compliant = [m for m in site.received if m["message_id"] == 1001]
        downloaded = sum(
            int(m["insertion_strings"][5]) for m in site.received if m["message_id"] == 10036
        )
        cache = sum(p.stat().st_size for p in home.cache.rglob("*") if p.is_file())
        assert len(compliant) == count, f"{len(compliant)} of {count} compliant"
        started = time.perf_counter()
        subprocess.run(["dpkg-query", "-W"], capture_output=True, check=True)
        dpkg = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, files)], capture_output=True, check=True)
        sha = time.perf_counter() - started
    return {
        "agent_run_s": seconds,
        "reevaluation_run_s": again,
        "bytes_downloaded": downloaded + cache,
        "dpkg_query_s": dpkg,
        "sha256sum_s": sha,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if shutil.which("dpkg-query") is None:
        print("dpkg-query is needed", file=sys.stderr)
        return 1
    runs = [one_run(args.apps) for _ in range(args.repeats)]
    row = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    row["rules"] = args.apps * 3
    row["ratio_to_dpkg_query_plus_sha256sum"] = row["agent_run_s"] / (
        row["dpkg_query_s"] + row["sha256sum_s"]
    )
    print(
        f"{args.apps} applications x 3 rules, one agent run (median of {args.repeats}): "
        f"first {row['agent_run_s']:.3f} s, re-evaluation {row['reevaluation_run_s']:.3f} s, "
        f"{int(row['bytes_downloaded'])} bytes downloaded; "
        f"dpkg-query -W {row['dpkg_query_s']:.3f} s, sha256sum {row['sha256sum_s']:.3f} s"
    )
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
