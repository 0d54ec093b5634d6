"""Policy as the client reads it: the deployments it must consider, parsed from a verified payload.

Parsing happens only after the signature was checked (see trust.py); a payload that does
not parse is refused as a whole, like a bad signature, so the site learns of it (10061).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quartermaster.client.timestamps import parse_optional, parse_utc
from quartermaster.core.bandwidth import BandwidthLimit
from quartermaster.core.detection_rules import Detection
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.program import ProgramSpec, check_run_as
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
    app_id: str = ""  # a deployment of an application (policy's `applications` holds it)
    purpose: str = ""  # install | uninstall, for an application
    requirements_unmet: str = ""  # the site's verdict on the application's `require` rule

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
            requirements_unmet=str(data.get("requirements_unmet") or "")[:300],
            **_application_ref(dep_id, data.get("application")),
        )


@dataclass(frozen=True)
class ApplicationPolicy:
    """The current revision of an application, as policy carries it."""

    app_id: str
    name: str
    revision: int
    package_id: str
    package_name: str
    source_version: int
    package_hash: str
    install: ProgramSpec
    uninstall: ProgramSpec | None
    detection: Detection
    run_as: str
    reevaluate: int
    depends: tuple[str, ...] = ()
    supersedes: tuple[tuple[str, str], ...] = ()  # (app_id, "upgrade" | "uninstall")

    @classmethod
    def from_dict(cls, data: Any) -> ApplicationPolicy:
        if not isinstance(data, dict):
            raise InvalidInput("a policy application is not an object")
        app_id = _text(data, "app_id")
        package_hash = _text(data, "package_hash")
        if not is_sha256_hex(package_hash):
            raise InvalidInput(f"application {app_id} has an invalid package_hash")
        uninstall = data.get("uninstall")
        try:
            reevaluate = int(data.get("reevaluate") or 86400)
            return cls(
                app_id=app_id,
                name=str(data.get("name") or ""),
                revision=int(data["revision"]),
                package_id=_text(data, "package_id"),
                package_name=str(data.get("package_name") or ""),
                source_version=int(data["source_version"]),
                package_hash=package_hash,
                install=_program(app_id, data.get("install") or {}),
                uninstall=_program(app_id, uninstall) if isinstance(uninstall, dict) else None,
                detection=Detection.from_dict(data.get("detection")),
                run_as=check_run_as(str(data.get("run_as") or "system")),
                reevaluate=max(reevaluate, 60),
                depends=tuple(str(d) for d in data.get("depends") or []),
                supersedes=tuple(
                    (str(s["app_id"]), str(s.get("mode") or "upgrade"))
                    for s in data.get("supersedes") or []
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"application {app_id} is malformed in policy: {exc}") from None


def _application_ref(deployment_id: str, data: Any) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict) or data.get("purpose") not in ("install", "uninstall"):
        raise InvalidInput(f"deployment {deployment_id} names its application badly")
    return {"app_id": str(data.get("app_id") or ""), "purpose": str(data["purpose"])}


@dataclass(frozen=True)
class Policy:
    client_id: str
    site_code: str
    serial: int
    issued: datetime
    expires: datetime
    poll_interval: int
    deployments: tuple[DeploymentPolicy, ...]
    applications: dict[str, ApplicationPolicy] = field(default_factory=dict)
    bandwidth: BandwidthLimit = field(default_factory=BandwidthLimit)  # core/bandwidth.py

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
            applications=_applications(data.get("applications"), deployments),
            bandwidth=BandwidthLimit.from_dict(data.get("bandwidth")),
        )


def _applications(data: Any, deployments: list[Any]) -> dict[str, ApplicationPolicy]:
    """Every application policy names, each one that a deployment, dependency or
    supersedence refers to present (or the policy is refused as a whole)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput("policy applications are not an object")
    found = {k: ApplicationPolicy.from_dict(v) for k, v in data.items()}
    wanted = {
        str((d.get("application") or {}).get("app_id"))
        for d in deployments
        if isinstance(d, dict) and d.get("application")
    }
    for app in found.values():
        wanted.update(app.depends)
        wanted.update(other for other, _ in app.supersedes)
    missing = sorted(wanted - found.keys())
    if missing:
        raise InvalidInput(f"policy names applications it does not carry: {', '.join(missing)}")
    return found


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
