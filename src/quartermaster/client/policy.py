"""Policy as the client reads it: the deployments it must consider, parsed from a verified payload.

Parsing happens only after the signature was checked (see trust.py); a payload that does
not parse is refused as a whole, like a bad signature, so the site learns of it (10061).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quartermaster.client.timestamps import parse_optional, parse_utc
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.program import ProgramSpec
from quartermaster.core.schedule import Window, parse_windows

RERUN_VALUES = ("never", "always", "if-failed", "if-succeeded")


@dataclass(frozen=True)
class DeploymentPolicy:
    deployment_id: str
    package_id: str
    package_name: str
    source_version: int
    package_hash: str
    program: ProgramSpec
    available: datetime | None
    deadline: datetime | None
    expires: datetime | None
    rerun: str = "if-failed"
    state: str = "active"
    maintenance_windows: tuple[Window, ...] = ()  # of every collection the client is in
    override_maintenance: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> DeploymentPolicy:
        if not isinstance(data, dict):
            raise InvalidInput("a policy deployment is not an object")
        dep_id = _text(data, "deployment_id")
        version = data.get("source_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInput(f"deployment {dep_id} has an invalid source_version")
        package_hash = _text(data, "package_hash")
        if not is_sha256_hex(package_hash):
            raise InvalidInput(f"deployment {dep_id} has an invalid package_hash")
        rerun = data.get("rerun") or "if-failed"
        if rerun not in RERUN_VALUES:
            raise InvalidInput(f"deployment {dep_id} has an unknown rerun value {rerun!r}")
        program = data.get("program")
        if not isinstance(program, dict):
            raise InvalidInput(f"deployment {dep_id} has no program")
        return cls(
            deployment_id=dep_id,
            package_id=_text(data, "package_id"),
            package_name=str(data.get("package_name") or ""),
            source_version=version,
            package_hash=package_hash,
            program=_program(dep_id, program),
            available=parse_optional(data.get("available")),
            deadline=parse_optional(data.get("deadline")),
            expires=parse_optional(data.get("expires")),
            rerun=rerun,
            state=str(data.get("state") or "active"),
            maintenance_windows=_windows(dep_id, data.get("maintenance_windows") or []),
            override_maintenance=data.get("override_maintenance") is True,
        )


@dataclass(frozen=True)
class Policy:
    client_id: str
    site_code: str
    serial: int
    issued: datetime
    expires: datetime
    poll_interval: int
    deployments: tuple[DeploymentPolicy, ...]

    def find(self, deployment_id: str) -> DeploymentPolicy | None:
        return next((d for d in self.deployments if d.deployment_id == deployment_id), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        if data.get("type") != "policy":
            raise InvalidInput("the signed object is not a policy")
        serial, poll = data.get("serial"), data.get("poll_interval")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            raise InvalidInput("policy has an invalid serial")
        if not isinstance(poll, int) or isinstance(poll, bool) or poll < 1:
            raise InvalidInput("policy has an invalid poll_interval")
        deployments = data.get("deployments")
        if not isinstance(deployments, list):
            raise InvalidInput("policy has no deployment list")
        return cls(
            client_id=_text(data, "client_id"),
            site_code=_text(data, "site_code"),
            serial=serial,
            issued=parse_utc(_text(data, "issued")),
            expires=parse_utc(_text(data, "expires")),
            poll_interval=poll,
            deployments=tuple(DeploymentPolicy.from_dict(d) for d in deployments),
        )


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"policy field {key!r} is missing or not text")
    return value


def _program(deployment_id: str, data: dict[str, Any]) -> ProgramSpec:
    try:
        return ProgramSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"deployment {deployment_id} has an invalid program: {exc}") from None


def _windows(deployment_id: str, texts: Any) -> tuple[Window, ...]:
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(f"deployment {deployment_id} has invalid maintenance windows")
    return parse_windows(texts)
