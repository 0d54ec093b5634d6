"""Applications in a client test world: packages on a real DP, policy that carries them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.client.conftest import ClientWorld, Package, deployment_entry, policy_payload
from tests.client.servers import StoreServer, write_store


def program(command: str, name: str = "Install", run_as: str = "system") -> dict[str, Any]:
    return {
        "name": name,
        "command": command,
        "working_dir": "",
        "run_context": run_as,
        "max_runtime": 600,
        "success_codes": [0],
        "reboot_codes": [3010, 1641],
        "retry_codes": [],
        "retry_count": 3,
        "retry_delay": 60,
        "requirements": {},
    }


class Apps:
    """Builds applications (each its own package on the DP) and publishes their policy."""

    def __init__(self, world: ClientWorld, dp: StoreServer) -> None:
        self.world, self.dp = world, dp
        self.apps: dict[str, dict[str, Any]] = {}
        self.packages: dict[str, Package] = {}
        self._number = 0x40000

    def app(
        self,
        install: str,
        detect: list[str],
        *,
        uninstall: str | None = None,
        combine: str = "all",
        depends: tuple[str, ...] = (),
        supersedes: tuple[tuple[str, str], ...] = (),
        run_as: str = "system",
        files: dict[str, bytes] | None = None,
    ) -> str:
        app_id = f"QM1{self._number:05X}"
        self._number += 1
        package = self.world.package(
            files or {"payload.txt": f"{app_id}\n".encode()},
            package_id=f"QM1{self._number:05X}",
        )
        write_store(self.dp.root, package.blobs)
        self.world.serve_from(package, ("dp1", self.dp.url))
        self.packages[app_id] = package
        self.apps[app_id] = {
            "app_id": app_id,
            "name": f"App {app_id}",
            "revision": 1,
            "package_id": package.manifest.package_id,
            "package_name": "Test package",
            "source_version": 1,
            "package_hash": package.package_hash,
            "install": program(install, run_as=run_as),
            "uninstall": program(uninstall, "Remove", run_as) if uninstall else None,
            "detection": {"combine": combine, "rules": detect},
            "run_as": run_as,
            "reevaluate": 86400,
            "depends": list(depends),
            "supersedes": [{"app_id": a, "mode": m} for a, m in supersedes],
        }
        return app_id

    def deployment(
        self, app_id: str, deployment_id: str = "QM120000", purpose: str = "install", **kw: Any
    ) -> dict[str, Any]:
        app = self.apps[app_id]
        entry = deployment_entry(self.packages[app_id], deployment_id=deployment_id, **kw)
        entry["program"] = app["uninstall"] if purpose == "uninstall" else app["install"]
        entry["application"] = {"app_id": app_id, "purpose": purpose}
        return entry

    def publish(self, *deployments: dict[str, Any]) -> None:
        world = self.world
        world._serial += 1
        payload = policy_payload(world.client_id, list(deployments), serial=world._serial)
        payload["applications"] = self.apps
        world.site.envelope = world.key.envelope(payload)
        world.site.etag = f'"{world._serial}"'


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
