"""Client test fixtures: a registered home, signed policy and manifests, a stand-in site API.

`InMemorySite` stands in for the site's client API only (policy, manifests, locations,
status); content always comes from real HTTP DP servers on 127.0.0.1.
"""

from __future__ import annotations

import copy
import platform
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quartermaster.client.agent import Agent, RunSummary
from quartermaster.client.home import ClientConfig, ClientHome
from quartermaster.client.local_state import LocalState
from quartermaster.client.machine_facts import MachineFacts
from quartermaster.client.site_link import Location, PolicyAnswer
from quartermaster.client.timestamps import format_utc
from quartermaster.core.errors import NotFound
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.manifest import FileEntry, Manifest
from quartermaster.core.signing import SigningKey

from .servers import StoreServer, write_store

START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
SITE_CODE = "QM1"


class FrozenClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Package:
    manifest: Manifest
    envelope: dict[str, Any]
    package_hash: str
    blobs: dict[str, bytes]

    def sha_of(self, path: str) -> str:
        return next(e.sha256 for e in self.manifest.files if e.path == path)


def make_package(
    key: SigningKey,
    files: dict[str, bytes],
    *,
    package_id: str = "QM100001",
    version: int = 1,
    modes: dict[str, int] | None = None,
) -> Package:
    entries = tuple(
        sorted(
            (
                FileEntry(path, len(data), (modes or {}).get(path, 0o644), sha256_bytes(data))
                for path, data in files.items()
            ),
            key=lambda e: e.path,
        )
    )
    manifest = Manifest(SITE_CODE, package_id, version, entries)
    blobs = {sha256_bytes(data): data for data in files.values()}
    return Package(manifest, key.envelope(manifest.to_dict()), manifest.package_hash(), blobs)


# The default program keeps a copy of what it was given (its work folder is removed after a
# successful run), in the client home's seen/<deployment> folder: ClientWorld.work().
KEEP_A_COPY = (
    'mkdir -p ../../seen && rm -rf "../../seen/$QM_DEPLOYMENT_ID" '
    '&& cp -Rp . "../../seen/$QM_DEPLOYMENT_ID"'
)


def deployment_entry(
    package: Package,
    *,
    deployment_id: str = "QM120000",
    command: str = KEEP_A_COPY,
    available: datetime | None = None,
    deadline: datetime | None = START - timedelta(hours=1),
    expires: datetime | None = None,
    rerun: str = "if-failed",
    state: str = "active",
    **program: Any,
) -> dict[str, Any]:
    spec = {
        "name": "Install",
        "command": command,
        "working_dir": "",
        "run_context": "system",
        "max_runtime": 600,
        "success_codes": [0],
        "reboot_codes": [3010, 1641],
        "retry_codes": [],
        "retry_count": 3,
        "retry_delay": 60,
        "requirements": {},
        **program,
    }
    stamp = lambda t: None if t is None else format_utc(t)  # noqa: E731
    return {
        "deployment_id": deployment_id,
        "package_id": package.manifest.package_id,
        "package_name": "Test package",
        "source_version": package.manifest.source_version,
        "package_hash": package.package_hash,
        "program": spec,
        "available": stamp(available or START - timedelta(days=1)),
        "deadline": stamp(deadline),
        "expires": stamp(expires),
        "rerun": rerun,
        "state": state,
    }


def policy_payload(
    client_id: str,
    deployments: list[dict[str, Any]],
    *,
    serial: int = 1,
    expires: datetime = START + timedelta(days=7),
    **extra: Any,
) -> dict[str, Any]:
    return {
        **extra,
        "type": "policy",
        "client_id": client_id,
        "site_code": SITE_CODE,
        "serial": serial,
        "issued": format_utc(START - timedelta(minutes=5)),
        "expires": format_utc(expires),
        "poll_interval": 3600,
        "deployments": deployments,
    }


class InMemorySite:
    """The site's client API as objects: what it serves and what it was sent."""

    def __init__(self) -> None:
        self.envelope: dict[str, Any] | None = None
        self.etag = ""
        self.manifests: dict[str, dict[str, Any]] = {}
        self.dp_locations: dict[str, list[Location]] = {}
        self.received: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.inventories: list[dict[str, Any]] = []
        self.poll_after: int | None = None

    def policy(self, etag: str) -> PolicyAnswer:
        self.calls.append(("policy", etag))
        if etag and etag == self.etag:
            return PolicyAnswer(None, etag)
        return PolicyAnswer(copy.deepcopy(self.envelope), self.etag)

    def manifest(self, package_hash: str) -> Any:
        self.calls.append(("manifest", package_hash))
        if package_hash not in self.manifests:
            raise NotFound(f"no package version has hash {package_hash}")
        return copy.deepcopy(self.manifests[package_hash])

    def locations(self, package_hash: str) -> list[Location]:
        self.calls.append(("locations", package_hash))
        return list(self.dp_locations.get(package_hash, []))

    def rekey(self) -> str:
        raise AssertionError("this test site never asks for a new secret")

    def roots(self, after: int) -> list[Any]:
        return []

    def trust_log(self, after: int, upto: int) -> list[Any]:
        return []

    def inventory(self, facts: dict[str, Any]) -> bool:
        self.inventories.append(copy.deepcopy(facts))
        return False

    def send_status(self, messages: list[dict[str, Any]]) -> dict[str, int]:
        self.received.extend(copy.deepcopy(messages))
        return {"accepted": len(messages), "duplicates": 0}

    def ids(self) -> list[int]:
        return [m["message_id"] for m in self.received]

    def messages(self, message_id: int) -> list[dict[str, Any]]:
        return [m for m in self.received if m["message_id"] == message_id]


class ClientWorld:
    """A registered client home with a signing key, a frozen clock and an in-memory site."""

    def __init__(self, root: Path) -> None:
        self.key = SigningKey.generate()
        self.clock = FrozenClock()
        self.site = InMemorySite()
        self.home = ClientHome(root / "home")
        self.client_id = str(uuid.uuid4())
        self.facts = MachineFacts(
            "test-host",
            platform.system().lower(),
            "1",
            platform.machine(),
            ["127.0.0.1"],
            free_disk_mb=100_000,
        )
        self.home.save_config(
            ClientConfig(
                self.client_id, "http://127.0.0.1:9", SITE_CODE, [self.key.public.to_dict()]
            )
        )
        self.home.write_secret("qmc_test")
        self._serial = 0

    def package(self, files: dict[str, bytes], **kwargs: Any) -> Package:
        package = make_package(self.key, files, **kwargs)
        self.site.manifests[package.package_hash] = package.envelope
        return package

    def publish(
        self,
        *deployments: dict[str, Any],
        serial: int | None = None,
        key: SigningKey | None = None,
        **kwargs: Any,
    ) -> None:
        self._serial = serial if serial is not None else self._serial + 1
        payload = policy_payload(self.client_id, list(deployments), serial=self._serial, **kwargs)
        self.site.envelope = (key or self.key).envelope(payload)
        self.site.etag = f'"{self._serial}"'

    def serve_from(self, package: Package, *dps: tuple[str, str]) -> None:
        self.site.dp_locations[package.package_hash] = [Location(n, u, "boundary") for n, u in dps]

    def deploy(
        self, dp: StoreServer, files: dict[str, bytes] | None = None, **entry: Any
    ) -> Package:
        """Publish a package on `dp` and a policy with one deployment of it."""
        package = self.package(files or {"install.sh": b"echo installing\n"})
        write_store(dp.root, package.blobs)
        self.serve_from(package, ("dp1", dp.url))
        self.publish(deployment_entry(package, **entry))
        return package

    def run(self, install: str | None = None) -> RunSummary:
        agent = Agent(self.home, self.site, clock=self.clock, facts=self.facts)
        return agent.run_once(install)

    def state(self, deployment_id: str = "QM120000") -> Any:
        return LocalState.load(self.home.state_path).get(deployment_id)

    def work(self, deployment_id: str = "QM120000") -> Path:
        """What the program of the default command was given (a copy: see KEEP_A_COPY)."""
        return self.home.root / "seen" / deployment_id

    def seen(self) -> Path:
        """Where `keep_what_the_program_saw` copies the work folder (deleted after a success)."""
        return self.home.root.parent / "seen-by-program"

    def keep_what_the_program_saw(self, then: str = "true") -> str:
        """A command: run `then` in the work folder, then copy the folder to `seen()`."""
        seen = self.seen()
        return f"{then} && rm -rf '{seen}' && cp -a . '{seen}'"

    def log(self, component: str) -> str:
        path = self.home.logs / f"{component}.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def world(tmp_path: Path) -> ClientWorld:
    return ClientWorld(tmp_path)


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[StoreServer]:
    """A running DP over an empty store folder; tests put blobs in with write_store."""
    with StoreServer(tmp_path / "dp1-store") as server:
        yield server
