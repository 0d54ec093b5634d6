"""A branch office in network namespaces: clients on a LAN, the site and its DP across a WAN.

    datacenter ns ── WAN veth (tc tbf, e.g. 100mbit, both ways) ── branch ns (router, bridge)
    site + embedded DP                                               ├── client ns 0 (10.N.2.10)
    10.N.1.1                                                         ├── client ns 1 (10.N.2.11)
                                                                     └── ...
    host ── management veth (10.N.9.1 ↔ 10.N.9.2) ── datacenter ns   (admin commands only)

Every client runs `qm client run --peer-listen` in a namespace of its own, so peer traffic
crosses the bridge and never the WAN link, whose interface counters give the WAN bytes. Names
(namespaces, interfaces) carry a random tag and the subnet a random second octet, so runs on
the same machine do not collide; `close()` removes everything, also after a failure.
Used by tests/e2e/test_peer_cache.py and bench/branch.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.processes import Daemon, SiteServer, run_qm, wait_until
from tests.e2e.site_templates import migrated_site_home

SITE_PORT = 8440
PEER_PORT = 8450


class NamespacesUnavailable(Exception):
    """This machine (or this user) cannot create network namespaces."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def namespaces_unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can): tried for real."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"qmprobe{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip() or done.returncode}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    probe = subprocess.run(["tc", "qdisc", "help"], capture_output=True, text=True)
    if probe.returncode not in (0, 255) and "tbf" not in probe.stderr + probe.stdout:
        return "tc is not available"
    return ""


def _free_octet() -> int:
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        octet = random.randint(100, 250)
        if f"10.{octet}." not in used:
            return octet
    raise NamespacesUnavailable("no free 10.N.0.0/16 range for the test networks")


@dataclass
class NamespacedSite(SiteServer):
    """The site in the datacenter namespace; reached from the host over the management link."""

    management: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.management}:{self.port}"

    @property
    def content_url(self) -> str:
        return f"http://{self.management}:{self.port + 1}"


@dataclass
class BranchOffice:
    base: Path
    clients: int
    rate: str = "100mbit"
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    octet: int = 0
    made: list[str] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    site: NamespacedSite | None = None
    homes: list[Path] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)

    # names -----------------------------------------------------------------------------
    @property
    def dc(self) -> str:
        return f"qm{self.tag}dc"

    @property
    def branch(self) -> str:
        return f"qm{self.tag}br"

    def client_ns(self, index: int) -> str:
        return f"qm{self.tag}c{index}"

    @property
    def wan_branch_side(self) -> str:
        return f"q{self.tag}wb"

    def net(self, third: int, host: int) -> str:
        return f"10.{self.octet}.{third}.{host}"

    @property
    def site_wan_url(self) -> str:
        return f"http://{self.net(1, 1)}:{SITE_PORT}"

    @property
    def lan(self) -> str:
        return f"10.{self.octet}.2.0/24"

    def client_address(self, index: int) -> str:
        return self.net(2, 10 + index)

    # set-up ----------------------------------------------------------------------------
    def create(self) -> None:
        self.octet = _free_octet()
        for ns in [self.dc, self.branch, *(self.client_ns(i) for i in range(self.clients))]:
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        self._wan()
        self._lan()
        self._management()

    def _wan(self) -> None:
        dc_side, branch_side = f"q{self.tag}wd", self.wan_branch_side
        _ip("link", "add", dc_side, "netns", self.dc, "type", "veth", "peer", "name",
            branch_side, "netns", self.branch)  # fmt: skip
        for ns, dev, address in (
            (self.dc, dc_side, self.net(1, 1)),
            (self.branch, branch_side, self.net(1, 2)),
        ):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            shape = ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", self.rate,
                     "burst", "256kb", "latency", "200ms"]  # fmt: skip
            subprocess.run(shape, check=True, capture_output=True)
        _ip("-n", self.dc, "route", "add", self.lan, "via", self.net(1, 2))

    def _lan(self) -> None:
        bridge = f"q{self.tag}lan"
        _ip("-n", self.branch, "link", "add", bridge, "type", "bridge")
        _ip("-n", self.branch, "addr", "add", f"{self.net(2, 1)}/24", "dev", bridge)
        _ip("-n", self.branch, "link", "set", bridge, "up")
        subprocess.run(
            ["ip", "netns", "exec", self.branch, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True,
        )  # fmt: skip
        for i in range(self.clients):
            inside, port = f"q{self.tag}c{i}", f"q{self.tag}p{i}"
            _ip("link", "add", inside, "netns", self.client_ns(i), "type", "veth", "peer",
                "name", port, "netns", self.branch)  # fmt: skip
            _ip("-n", self.branch, "link", "set", port, "master", bridge)
            _ip("-n", self.branch, "link", "set", port, "up")
            ns = self.client_ns(i)
            _ip("-n", ns, "addr", "add", f"{self.client_address(i)}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "route", "add", "default", "via", self.net(2, 1))

    def _management(self) -> None:
        host_side = f"q{self.tag}m0"
        _ip("link", "add", host_side, "type", "veth", "peer", "name", f"q{self.tag}m1",
            "netns", self.dc)  # fmt: skip
        self.made.append(f"link:{host_side}")
        _ip("addr", "add", f"{self.net(9, 1)}/24", "dev", host_side)
        _ip("link", "set", host_side, "up")
        _ip("-n", self.dc, "addr", "add", f"{self.net(9, 2)}/24", "dev", f"q{self.tag}m1")
        _ip("-n", self.dc, "link", "set", f"q{self.tag}m1", "up")

    def close(self) -> None:
        """Stop every process started here, then remove every namespace and link made."""
        for daemon in reversed(self.daemons):
            with contextlib.suppress(Exception):
                daemon.stop()
        if self.site is not None:
            with contextlib.suppress(Exception):
                self.site.stop()
        for name in reversed(self.made):
            if name.startswith("link:"):
                subprocess.run(["ip", "link", "del", name[5:]], capture_output=True)
            else:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()

    # processes -------------------------------------------------------------------------
    def in_ns(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns, sys.executable, "-m", "quartermaster"]

    def start_site(self, config: dict[str, Any] | None = None) -> NamespacedSite:
        home = self.base / "site"
        migrated_site_home(home, None, "QM1", f"0.0.0.0:{SITE_PORT}")
        path = home / "config.json"
        settings = {
            **json.loads(path.read_text()),
            "content_listen": f"0.0.0.0:{SITE_PORT + 1}",
            "public_url": self.site_wan_url,
            "content_url": f"http://{self.net(1, 1)}:{SITE_PORT + 1}",
            "poll_interval": 2,
            **(config or {}),
        }
        path.write_text(json.dumps(settings, indent=2))
        daemon = Daemon(
            ["site", "serve", "--home", str(home)],
            self.base / "site-serve.log",
            command=self.in_ns(self.dc),
        )
        self.site = NamespacedSite(home, SITE_PORT, daemon, management=self.net(9, 2))
        self.site.start(timeout=90)
        return self.site

    def register_clients(self) -> list[str]:
        """Register every client, a few at a time (50 one after the other take minutes)."""

        def register(i: int) -> str:
            done = subprocess.run(
                [*self.in_ns(self.client_ns(i)), "client", "register", "--home",
                 str(self.base / f"client{i}"), "--site", self.site_wan_url, "--hostname",
                 f"branch-{i:02d}"],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if done.returncode != 0:
                raise AssertionError(f"client {i} did not register: {done.stderr}")
            return done.stdout.strip()

        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(register, range(self.clients)))
        self.homes.extend(self.base / f"client{i}" for i in range(self.clients))
        self.client_ids.extend(ids)
        return self.client_ids

    def start_clients(self, *extra: str) -> None:
        for i, home in enumerate(self.homes):
            daemon = Daemon(
                ["client", "run", "--home", str(home), "--peer-listen",
                 f"{self.client_address(i)}:{PEER_PORT}", *extra],
                self.base / f"client{i}.log",
                command=self.in_ns(self.client_ns(i)),
            )  # fmt: skip
            daemon.start()
            self.daemons.append(daemon)

    def peers_serving(self) -> int:
        return sum(1 for home in self.homes if "serving yes" in _peer_log(home))

    def wait_peers_serving(self, timeout: float = 120) -> None:
        wait_until(
            lambda: self.peers_serving() == self.clients,
            f"all {self.clients} clients serving as peers",
            timeout,
        )

    # measurements ----------------------------------------------------------------------
    def wan_bytes(self) -> int:
        """Bytes both ways on the WAN link so far (the branch side's interface counters)."""
        done = subprocess.run(
            ["ip", "-n", self.branch, "-j", "-s", "link", "show", "dev", self.wan_branch_side],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        stats = json.loads(done.stdout)[0]["stats64"]
        return int(stats["rx"]["bytes"]) + int(stats["tx"]["bytes"])

    def admin(self, *args: str) -> Any:
        assert self.site is not None
        return run_qm(*args, env=self.site.env)


def _peer_log(home: Path) -> str:
    path = home / "logs" / "peercache.log"
    return path.read_text(errors="replace") if path.is_file() else ""
