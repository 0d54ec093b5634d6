"""What the client tells the site about its computer, and what program requirements test."""

from __future__ import annotations

import contextlib
import platform
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quartermaster import __version__


@dataclass(frozen=True)
class MachineFacts:
    hostname: str
    os: str
    os_version: str
    architecture: str
    ip_addresses: list[str] = field(default_factory=list)
    free_disk_mb: int = 0

    def registration(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "os": self.os, "os_version": self.os_version,
                "architecture": self.architecture, "ip_addresses": list(self.ip_addresses),
                "agent_version": __version__, "properties": {"free_disk_mb": self.free_disk_mb}}


def collect_facts(home: Path, site_url: str, hostname: str = "") -> MachineFacts:
    return MachineFacts(
        hostname=hostname or socket.gethostname(),
        os=platform.system().lower(),
        os_version=platform.release(),
        architecture=platform.machine(),
        ip_addresses=[address_towards(site_url)],
        free_disk_mb=free_disk_mb(home),
    )


def address_towards(url: str) -> str:
    """The local address used to reach `url`: a UDP connect() picks a route, sends nothing."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with contextlib.suppress(OSError):
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as sock:
            sock.connect(info[4])
            return str(sock.getsockname()[0])
    return "127.0.0.1"


def free_disk_mb(path: Path) -> int:
    """Free space where the client keeps its cache; the nearest existing parent of `path`."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free // (1024 * 1024)
    return 0
