"""What the client tells the site about its computer, and what program requirements test."""

from __future__ import annotations

import contextlib
import platform
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from quartermaster import __version__
from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import sha256_bytes

_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class MachineFacts:
    hostname: str
    os: str
    os_version: str
    architecture: str
    ip_addresses: list[str] = field(default_factory=list)
    free_disk_mb: int = 0

    def registration(self, custom: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What registration and inventory reports send: these facts and custom properties."""
        properties: dict[str, Any] = {**(custom or {}), "free_disk_mb": self.free_disk_mb}
        return {
            "hostname": self.hostname,
            "os": self.os,
            "os_version": self.os_version,
            "architecture": self.architecture,
            "ip_addresses": list(self.ip_addresses),
            "agent_version": __version__,
            "properties": properties,
        }


def inventory_digest(report: dict[str, Any]) -> str:
    """Identifies a report for "has anything changed?"; free disk counts in whole GiB, so
    ordinary churn does not make every agent run report again."""
    properties = dict(report.get("properties", {}))
    properties["free_disk_mb"] = int(properties.get("free_disk_mb", 0)) // 1024
    return sha256_bytes(canonical_json({**report, "properties": properties}))


def parse_properties(
    assignments: list[str],
    current: Mapping[str, str] | None = None,
    remove: list[str] | None = None,
) -> dict[str, str]:
    """Custom properties (``NAME=VALUE``) as collection rules see them (``prop.NAME``)."""
    properties = dict(current or {})
    for name in remove or []:
        properties.pop(name, None)
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name = name.strip()
        if not sep or not _PROPERTY_NAME.fullmatch(name):
            raise InvalidInput(
                f"custom property {assignment!r} is not NAME=VALUE",
                "names are letters, digits and _ (e.g. department=lab)",
            )
        if name == "free_disk_mb":
            raise InvalidInput(
                "free_disk_mb is measured by the client, not set", "choose another property name"
            )
        if len(value) > 255:
            raise InvalidInput(f"custom property {name} is longer than 255 characters")
        properties[name] = value
    if len(properties) > 100:
        raise InvalidInput("a client reports at most 100 custom properties")
    return properties


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
