"""The site's copy of its root metadata: keys/root/<version>.json, public, written only after
the chain check (a threshold of the previous root's keys signed the new version).

The site cannot make a root: root keys are offline (`qm keys root ...`). It keeps every
version so that a client pinned to an old one can walk the chain to the newest.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import Conflict, InvalidInput, SignatureError
from quartermaster.core.trust_roles import Root, next_root, trust_first_root

FOLDER = "root"


class RootStore:
    """The root versions in a site home's keys folder, re-read when a version is added."""

    def __init__(self, keys_folder: Path) -> None:
        self.folder = keys_folder / FOLDER
        self._lock = threading.Lock()
        self._seen: tuple[str, ...] | None = None
        self._envelopes: list[dict[str, Any]] = []
        self._current: Root | None = None

    def _refresh(self) -> None:
        try:
            names = tuple(sorted(os.listdir(self.folder)))
        except FileNotFoundError:
            names = ()
        if names == self._seen:
            return
        with self._lock:
            envelopes = []
            for version in sorted(int(n[:-5]) for n in names if n[:-5].isdigit()):
                try:
                    envelopes.append(json.loads((self.folder / f"{version}.json").read_bytes()))
                except (OSError, ValueError):
                    continue  # a damaged file: clients would refuse it too
            self._envelopes, self._current, self._seen = envelopes, _verified(envelopes), names

    def current(self) -> Root | None:
        """The newest root that follows the chain from version 1: what the site itself
        believes (approvals it accepts, what `qm package show` counts)."""
        self._refresh()
        return self._current

    def latest_version(self) -> int:
        """The highest version stored, checked or not: policy names it, so that clients
        fetch and judge it (a forged file shows up as their 10080, not as silence)."""
        self._refresh()
        versions = [e["signed"].get("version") for e in self._envelopes if _is_root(e)]
        return max((v for v in versions if isinstance(v, int)), default=0)

    def after(self, version: int) -> list[dict[str, Any]]:
        """The envelopes of every version above `version`, oldest first (a client's walk)."""
        self._refresh()
        return [
            e for e in self._envelopes if _is_root(e) and e["signed"].get("version", 0) > version
        ]

    def check(self, envelope: Any, site_code: str) -> Root:
        """The root in `envelope`, if it may follow the current one (or start the chain)."""
        current = self.current()
        try:
            root = trust_first_root(envelope) if current is None else next_root(current, envelope)
        except SignatureError as exc:
            raise Conflict(f"the root metadata is refused: {exc.message}", exc.hint) from None
        if root.site_code != site_code:
            raise InvalidInput(f"the root metadata is for site {root.site_code}, not {site_code}")
        if current is None and root.version != 1:
            raise InvalidInput(f"the first root of a site is version 1, not {root.version}")
        return root

    def install(self, root: Root) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.folder / f"{root.version}.json", canonical_json(root.envelope))


def _is_root(envelope: Any) -> bool:
    return isinstance(envelope, dict) and isinstance(envelope.get("signed"), dict)


def _verified(envelopes: list[Any]) -> Root | None:
    current: Root | None = None
    for envelope in envelopes:
        try:
            current = (
                trust_first_root(envelope) if current is None else next_root(current, envelope)
            )
        except SignatureError:
            break
    return current


def install_root(ctx: Any, envelope: Any) -> Root:
    """Check a new root against the current one, store it, log it, and make every client
    fetch policy (which names the new version) at its next poll."""
    from quartermaster.site.identity import trust_log
    from quartermaster.site.policy_serial import bump_policy_serial

    root = ctx.roots.check(envelope, ctx.site_code)
    with ctx.db.session() as session:
        trust_log.append(
            session,
            "root",
            f"version {root.version}",
            {
                "roots": sorted(root.roles["root"].keyids),
                "root_threshold": root.roles["root"].threshold,
                "online": sorted(root.roles["online"].keyids),
                "approvers": sorted(root.roles["approver"].keyids),
                "approval_threshold": root.approval_threshold,
            },
        )
        bump_policy_serial(session)
        ctx.roots.install(root)  # inside the transaction: no root without its log entry
    return root
