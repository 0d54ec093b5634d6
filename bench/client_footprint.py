"""The client agent's idle footprint: resident memory of the service, CPU per 304 poll.

    python bench/client_footprint.py --site http://127.0.0.1:8440 [--polls 300] [--qm PATH]

1. registers a client in a temporary home (`qm client register`) and runs it once, so it
   holds the current policy and its ETag;
2. CPU per poll: in this process, `--polls` agent cycles as the service runs them (a new
   connection to the site, the inventory check, a conditional policy poll answered 304, the
   run over the unchanged policy, the empty status spool, the cleanup sweep); the process's
   CPU time (user + system) divided by the count. The first cycle (imports, first TLS or
   TCP set-up) is not counted;
3. idle RSS: starts the service (`qm client run --home H`, then the lighter entry point the
   systemd unit uses, `python -m quartermaster.client run --home H`; the poll interval is
   3600 s), waits for its first cycle to end ("next run in" in policyagent.log), then reads
   VmRSS and the CPU time it used while idle for `--idle` seconds from /proc.

`--qm` chooses the `qm` that runs the service; `--client-venv V` uses a client-only install
(packages/client) instead: V/bin/qm-client and V/bin/python. docs/performance.md ("Client
agent") has the figures and the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_RSS_MB = 40.0
GOAL_POLL_MS = 5.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def qm(command: list[str], *args: str) -> str:
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"qm {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def cpu_per_poll(home: Path, polls: int) -> dict[str, float]:
    """Milliseconds of this process's CPU per agent cycle that ends in a 304."""
    from quartermaster.client.home import ClientHome
    from quartermaster.client.service import agent_cycle

    client = ClientHome(home)
    stop = threading.Event()
    agent_cycle(client, stop)  # warm: imports, first connection
    before = time.process_time()
    started = time.perf_counter()
    for _ in range(polls):
        agent_cycle(client, stop)
    cpu = time.process_time() - before
    wall = time.perf_counter() - started
    log = (client.logs / "policyagent.log").read_text()
    unchanged = log.count("policy unchanged")
    if unchanged < polls:
        raise SystemExit(f"only {unchanged} of {polls} polls were answered 304")
    return {"cpu_ms_per_poll": cpu * 1000 / polls, "wall_ms_per_poll": wall * 1000 / polls}


def idle_service(service: list[str], home: Path, idle: float) -> dict[str, float]:
    """RSS and idle CPU of the agent service once its first cycle is over."""
    log = home / "logs" / "policyagent.log"
    start_size = log.stat().st_size if log.exists() else 0
    process = subprocess.Popen(
        [*service, "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while "next run in" not in log.read_text()[start_size:]:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the service did not finish its first cycle")
            time.sleep(0.1)
        time.sleep(1.0)
        before = cpu_seconds(process.pid)
        time.sleep(idle)
        return {
            "idle_rss_mb": rss_mb(process.pid),
            "idle_cpu_ms_per_minute": (cpu_seconds(process.pid) - before) * 1000 * 60 / idle,
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def python_of(command: list[str]) -> str:
    """The interpreter of a `qm` script (its #! line), or this one."""
    if command[0] == sys.executable:
        return sys.executable
    first = Path(command[0]).read_text(errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", required=True)
    parser.add_argument("--polls", type=int, default=300)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to watch it idle")
    parser.add_argument("--qm", default="", help="the qm that runs the service")
    parser.add_argument(
        "--client-venv", default="", help="a venv holding only quartermaster-client: its agent"
    )
    args = parser.parse_args()
    if args.client_venv:  # qm-client: the client commands without the `client` group
        venv = Path(args.client_venv)
        client_cmd = [str(venv / "bin" / "qm-client")]
        python = str(venv / "bin" / "python")
    else:
        command = [args.qm] if args.qm else [sys.executable, "-m", "quartermaster"]
        client_cmd, python = [*command, "client"], python_of(command)
    with tempfile.TemporaryDirectory(prefix="qm-footprint-") as folder:
        home = Path(folder) / "client"
        qm(client_cmd, "register", "--home", str(home), "--site", args.site)
        qm(client_cmd, "run", "--home", str(home), "--once")
        figures = cpu_per_poll(home, args.polls)
        for name, service in (
            ("cli_run", [*client_cmd, "run"]),
            ("service_module", [python, "-m", "quartermaster.client", "run"]),
        ):
            idle = idle_service(service, home, args.idle)
            figures.update({f"{name}_{key}": value for key, value in idle.items()})
    figures = {name: round(value, 2) for name, value in figures.items()}
    figures["goal_idle_rss_mb"] = GOAL_RSS_MB
    figures["goal_cpu_ms_per_poll"] = GOAL_POLL_MS
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
