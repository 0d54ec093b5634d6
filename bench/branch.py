"""A branch office behind a shaped WAN link: how many bytes cross it for one deployment.

    sudo .venv/bin/python -m bench.branch [--size-mib 16] [--clients 5] [--files 4]
                                          [--rate 100mbit] [--poll 30] [--lead S] [--json]

(as root, from the repository root: it makes network namespaces; tests/e2e/branch_office.py
draws the topology). The site and its DP run in a "datacenter" namespace; every client runs
`qm client run --peer-listen` in a namespace of its own on the branch's bridge; the WAN is a
veth pair shaped with `tc ... tbf rate RATE` both ways. The peer cache is turned on for the
branch's range only (a per-boundary override; the site-wide switch stays off).

The deployment is available now with a deadline ahead (by default 60 s of clock tolerance
+ one poll interval + 30 s): every client receives it in policy first (the bench waits until
all have said "available") and then, having computed its wake-up from the deadline, starts
it at the same moment, the deadline less the 60 s a client may start early
(core/schedule.py's CLOCK_TOLERANCE). That is the thundering herd of a scheduled deployment.
The site's poll interval is `--poll` (30 s by default; real sites poll hourly), so the herd
is driven by the deadline, not by the polls. As soon as the first client has finished, the
DP goes away (its address is removed from the datacenter): the others must complete from
peers. With `--dp-stays` it stays, and a client of the herd that took bytes from it once a
peer held the version is what the herd cost. Rows: WAN bytes both ways during the deployment
against the package size (goal ≤ 1.05×), the spread of the clients' start times (goal:
within one second), clients that succeeded (goal: all), clients that took bytes from the DP
or asked it in vain, the bytes by source from `qm deploy status --json`, wall time, the
most disk the run held at once (free space sampled every 0.5 s; other work on the machine
counts too), and the load average before and after (the machine is shared). The goal at
full size is 1 GiB to 50 clients: `--size-mib 1024 --clients 50 --files 256 --site-tmpfs`
(files of 4 MiB are single blobs that the work folder hard-links; larger files are stored
as chunks and assembled, a second copy per client while its program runs; the site's home
goes to /dev/shm to spare 2 GiB of disk). Everything the run made (namespaces, processes,
the data folders) is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.branch_office import BranchOffice, namespaces_unavailable
from tests.e2e.processes import wait_until
from tests.e2e.scenario import create_package, deployment_status

from quartermaster.core.schedule import CLOCK_TOLERANCE

MIB = 1024 * 1024
_LOG_TIME = re.compile(r'time="(\d\d):(\d\d):(\d\d)\.(\d\d\d)')


def make_source(folder: Path, size: int, files: int, links: Path) -> int:
    """Random files (nothing compresses, nothing repeats) and a program that reads them and
    records how many names its first file has (2: a hard link to the client's cache)."""
    folder.mkdir(parents=True)
    for index in range(files):
        with (folder / f"part{index}.bin").open("wb") as handle:
            left = size // files
            while left:
                piece = os.urandom(min(left, 4 * MIB))
                handle.write(piece)
                left -= len(piece)
    (folder / "install.sh").write_text(
        f"cat part*.bin > /dev/null\nstat -c %h part0.bin >> {links}\n"
    )
    return sum(f.stat().st_size for f in folder.iterdir())


def start_times(office: BranchOffice, deployment_id: str) -> list[float]:
    """When each client decided to run the deployment (its policy agent log), in seconds."""
    found = []
    for home in office.homes:
        text = (home / "logs" / "policyagent.log").read_text(errors="replace")
        for line in text.splitlines():
            if f"deployment {deployment_id} " in line and ": run:" in line:
                h, m, s, ms = (int(g) for g in _LOG_TIME.search(line).groups())  # type: ignore[union-attr]
                found.append(h * 3600 + m * 60 + s + ms / 1000)
                break
    return found


def _log_texts(office: BranchOffice, name: str) -> Iterator[str]:
    """Each client's component log `name` ("" where it has none yet)."""
    for home in office.homes:
        log = home / "logs" / name
        yield log.read_text(errors="replace") if log.is_file() else ""


def available_count(office: BranchOffice, deployment_id: str) -> int:
    """Clients whose policy agent has seen the deployment and found it not due yet."""
    return sum(
        f"deployment {deployment_id} " in text and ": available:" in text
        for text in _log_texts(office, "policyagent.log")
    )


def _memory_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


class DiskWatch:
    """The least free space seen on the run's file system, sampled every half second; the
    run stops when less than `reserve` is left (the machine is shared)."""

    def __init__(self, path: Path, reserve: int = 3 * 1024 * MIB) -> None:
        self.path = path
        self.reserve = reserve
        self.start_free = shutil.disk_usage(path).free
        self.min_free = self.start_free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            self.min_free = min(self.min_free, shutil.disk_usage(self.path).free)

    def check(self) -> bool:
        """True while there is room; else the run stops."""
        if _memory_available() < self.reserve // 2:  # client caches in /dev/shm use memory
            raise SystemExit("stopped: less than 1.5 GiB of memory available")
        if self.min_free < self.reserve:
            raise SystemExit(
                f"stopped: {self.min_free} bytes free on {self.path}'s file system, "
                f"less than the {self.reserve} kept for other work"
            )
        return True

    def peak_used(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.start_free - self.min_free


def dp_use(office: BranchOffice, dp: str) -> tuple[int, int]:
    """(clients that got a blob from the DP, clients that asked it in vain): a client that
    went to the DP after the first holder was listed as a peer is what a herd costs."""
    got = failed = 0
    for text in _log_texts(office, "cas.log"):
        got += f") from {dp} (" in text
        failed += f") from {dp}: " in text
    return got, failed


def finished(office: BranchOffice, package_id: str) -> int:
    """Clients whose content access log says the package is in their cache, verified."""
    return sum(
        f"package {package_id} version 1: " in text and "files verified" in text
        for text in _log_texts(office, "cas.log")
    )


def run(
    size_mib: int,
    clients: int,
    files: int,
    rate: str,
    poll: int,
    lead: int,
    keep: bool,
    dp_stays: bool = False,
    site_tmpfs: bool = False,
    clients_in_ram: int = 0,
) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="qm-branch-"))
    office = BranchOffice(base, clients, rate)
    load_before = os.getloadavg()
    disk = DiskWatch(base)
    in_ram = site_tmpfs or clients_in_ram > 0
    site_ram = Path(tempfile.mkdtemp(prefix="qm-branch-", dir="/dev/shm")) if in_ram else None
    try:
        if site_ram is not None:  # the site's library and DP store in memory, not on the disk
            for name in ["site", *(f"client{i}" for i in range(clients_in_ram))]:
                (site_ram / name).mkdir()
                (base / name).symlink_to(site_ram / name)
        office.create()
        # the DP on an address of its own, so it can go away while the site stays
        dp_address = office.net(1, 3)
        subprocess.run(
            ["ip", "-n", office.dc, "addr", "add", f"{dp_address}/24", "dev", f"q{office.tag}wd"],
            check=True,
        )
        site = office.start_site(
            {"content_url": f"http://{dp_address}:8441", "poll_interval": poll}
        )
        office.admin(
            "site", "settings", "--peer-lease", "600", "--peer-cache-boundaries",
            json.dumps([{"boundary": office.lan, "peer_cache": True}]),
        )  # fmt: skip
        ids = office.register_clients()
        office.start_clients("--peer-connections", "16")
        office.wait_peers_serving(timeout=300)
        size = make_source(base / "source", size_mib * MIB, files, base / "links")
        package_id = create_package(site, base / "source", name="Branch bench")
        shutil.rmtree(base / "source")  # the site's content library holds it now
        site.qm("collection", "create", "Branch")
        for client_id in ids:
            site.qm("collection", "add", "Branch", client_id)
        wan_start = office.wan_bytes()
        deadline_at = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
        start_at = deadline_at - CLOCK_TOLERANCE  # when a client may start it
        deployment_id = site.qm(
            "deploy", "create", "--package", package_id, "--program", "Install",
            "--collection", "Branch", "--available", "now",
            "--deadline", deadline_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ).stdout.strip()  # fmt: skip
        wait_until(
            lambda: disk.check() and available_count(office, deployment_id) == clients,
            f"all {clients} clients hold the deployment in policy before it starts",
            timeout=max((start_at - datetime.now(UTC)).total_seconds(), 1.0),
            interval=0.5,
        )
        policy_lead = (start_at - datetime.now(UTC)).total_seconds()
        time.sleep(max((start_at - datetime.now(UTC)).total_seconds(), 0.0))
        began = time.monotonic()
        wait_until(
            lambda: disk.check() and finished(office, package_id) >= 1,
            "the first client holds the package",
            timeout=3600,
            interval=0.05,
        )
        if not dp_stays:
            subprocess.run(
                ["ip", "-n", office.dc, "addr", "del", f"{dp_address}/24", "dev",
                 f"q{office.tag}wd"],
                check=True,
            )  # fmt: skip
        dp_gone_after = time.monotonic() - began
        done_when_dp_left = finished(office, package_id)

        def settled() -> bool:
            disk.check()
            counts = deployment_status(site, deployment_id)["counts"]
            return bool(counts["succeeded"] + counts["failed"] == clients)

        wait_until(settled, "every client finished", timeout=3600, interval=1.0)
        wall = time.monotonic() - began
        wan = office.wan_bytes() - wan_start
        status = deployment_status(site, deployment_id)
        starts = start_times(office, deployment_id)
        dp_got, dp_failed = dp_use(office, "site")  # the site's embedded DP
        links = (base / "links").read_text().split() if (base / "links").is_file() else []
        midnight = start_at.replace(hour=0, minute=0, second=0, microsecond=0)
        start_second = (start_at - midnight).total_seconds()
        return {
            "clients": clients,
            "package_bytes": size,
            "wan_bytes": wan,
            "wan_ratio": round(wan / size, 4),
            "start_spread_seconds": round(max(starts) - min(starts), 3) if starts else None,
            "started": len(starts),
            "first_start_after_start_at": round(min(starts) - start_second, 3) if starts else None,
            "last_start_after_start_at": round(max(starts) - start_second, 3) if starts else None,
            "all_held_policy_seconds_before_start": round(policy_lead, 1),
            "succeeded": status["counts"]["succeeded"],
            "failed": status["counts"]["failed"],
            "content_sources": status["content_sources"],
            "dp_removed_after_seconds": None if dp_stays else round(dp_gone_after, 1),
            "first_done_after_seconds": round(dp_gone_after, 1),
            "clients_with_bytes_from_dp": dp_got,
            "clients_that_asked_dp_in_vain": dp_failed,
            "clients_done_when_dp_left": done_when_dp_left,
            "wall_seconds": round(wall, 1),
            "rate": rate,
            "poll_interval": poll,
            "peak_disk_bytes": disk.peak_used(),
            "work_files_hard_linked": f"{links.count('2')} of {len(links)} program runs",
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        office.close()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        if site_ram is not None:
            shutil.rmtree(site_ram, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rate", default="100mbit")
    parser.add_argument("--poll", type=int, default=30, help="the site's poll interval")
    parser.add_argument(
        "--lead", type=int, help="seconds to the deadline (default: 60 + the poll interval + 30)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument(
        "--site-tmpfs",
        action="store_true",
        help="the site's home (content library, DP store) in /dev/shm: 2 GiB less disk at 1 GiB",
    )
    parser.add_argument(
        "--clients-in-ram",
        type=int,
        default=0,
        help="this many client homes (caches) in /dev/shm too, where the disk is short",
    )
    parser.add_argument(
        "--dp-stays", action="store_true", help="the DP stays after the first client finished"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = namespaces_unavailable()
    if reason:
        raise SystemExit(f"bench/branch.py needs network namespaces: {reason}")
    lead = args.lead if args.lead is not None else 60 + args.poll + 30
    row = run(
        args.size_mib, args.clients, args.files, args.rate, args.poll, lead, args.keep,
        args.dp_stays, args.site_tmpfs, args.clients_in_ram,
    )  # fmt: skip
    if args.json:
        print(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        print(f"{key:38} {value}")


if __name__ == "__main__":
    main()
