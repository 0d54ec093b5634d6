"""What the client remembers about each deployment between runs (state.json).

`result` is what happened last, including steps that stopped before the program ran
(requirements, manifest, content). `ran_version` and `ran_result` remember only program
runs: rerun rules look at those, so a download failure never counts as an attempt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from quartermaster.client.home import write_private
from quartermaster.client.timestamps import format_optional, parse_optional
from quartermaster.core.errors import InvalidInput


class Result:
    """Values of DeploymentState.result."""

    SUCCEEDED = "succeeded"
    REBOOT_REQUIRED = "succeeded_reboot_required"
    RETRYING = "retrying"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    NOT_STARTED = "not_started"
    REQUIREMENTS_NOT_MET = "requirements_not_met"
    MANIFEST_REFUSED = "manifest_refused"
    CONTENT_UNAVAILABLE = "content_unavailable"
    COMPLIANT = "compliant"  # an application detection already agrees with; nothing ran
    INTERRUPTED = "interrupted"  # the agent stopped while the program ran; not retried


SUCCESS_RESULTS = frozenset({Result.SUCCEEDED, Result.REBOOT_REQUIRED})


@dataclass
class DeploymentState:
    source_version: int | None = None  # version the last step worked on
    result: str = ""
    reason: str = ""
    exit_code: int | None = None
    ran_version: int | None = None  # version of the last program run
    ran_result: str = ""  # "succeeded" or "failed" for that run
    attempts: int = 0  # program starts at ran_version
    retries: int = 0  # retryable exits in the current sequence
    next_retry: str | None = None
    last_run: str | None = None  # when the last program run started (client clock)
    running: str | None = None  # set while a program runs: still set at start = interrupted
    notified: list[str] = field(default_factory=list)  # once-only messages already sent
    # Applications: what detection said last, when, and when compliance was last reported.
    detected: bool | None = None
    evaluated: str | None = None
    reported: str | None = None

    @property
    def next_retry_time(self) -> datetime | None:
        return parse_optional(self.next_retry)

    def retry_pending(self, version: int) -> bool:
        return (
            self.result == Result.RETRYING
            and self.ran_version == version
            and self.next_retry is not None
        )

    def succeeded_at(self, version: int) -> bool:
        return self.ran_version == version and self.ran_result == Result.SUCCEEDED

    def first_notice(self, key: str) -> bool:
        """True the first time `key` is seen; remembers it."""
        if key in self.notified:
            return False
        self.notified.append(key)
        return True

    def record_step(self, version: int, result: str, reason: str = "") -> None:
        self.source_version, self.result, self.reason = version, result, reason
        self.exit_code = None

    def record_run(
        self, version: int, result: str, exit_code: int | None, now: datetime, reason: str = ""
    ) -> None:
        if self.ran_version != version:
            self.attempts, self.retries = 0, 0
        self.record_step(version, result, reason)
        self.exit_code = exit_code
        self.ran_version = version
        self.ran_result = Result.SUCCEEDED if result in SUCCESS_RESULTS else Result.FAILED
        self.attempts += 1
        self.last_run = format_optional(now)
        if result != Result.RETRYING:
            self.retries, self.next_retry = 0, None

    def schedule_retry(self, when: datetime) -> None:
        self.retries += 1
        self.next_retry = format_optional(when)


class LocalState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.deployments: dict[str, DeploymentState] = {}
        # Each application's last detection: revision, detected, result, evaluated, evidence.
        self.applications: dict[str, dict[str, Any]] = {}
        self._saved: bytes | None = None  # the file's bytes as last read or written

    @classmethod
    def load(cls, path: Path) -> LocalState:
        state = cls(path)
        if not path.exists():
            return state
        try:
            raw = path.read_bytes()
            data: Any = json.loads(raw.decode("utf-8"))
            entries = data["deployments"]
            state.deployments = {k: _entry(v) for k, v in entries.items()}
            state.applications = dict(data.get("applications") or {})
            state._saved = raw
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot read {path}: {exc}",
                "move the file aside; the client then treats every deployment as new",
            ) from None
        return state

    def get(self, deployment_id: str) -> DeploymentState:
        return self.deployments.setdefault(deployment_id, DeploymentState())

    def save(self) -> None:
        """Write state.json (fsync, rename) if it changed since it was loaded or saved: an
        idle poll then writes nothing."""
        data = {
            "deployments": {k: asdict(v) for k, v in sorted(self.deployments.items())},
            "applications": dict(sorted(self.applications.items())),
        }
        text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
        if text == self._saved:
            return
        write_private(self.path, text)
        self._saved = text


def _entry(data: dict[str, Any]) -> DeploymentState:
    known = {k: v for k, v in data.items() if k in DeploymentState.__dataclass_fields__}
    return DeploymentState(**known)
