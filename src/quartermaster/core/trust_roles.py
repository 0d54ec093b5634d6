"""Roles with thresholds: an offline root, the online keys it allows, and release approvers.

The root metadata is a signed envelope whose payload names every key and, per role, which
keys count and how many signatures are needed (TUF's root.json, reduced to three roles):

    root      signs the next root metadata; kept offline (removable media, another machine)
    online    signs policy and manifests; lives in the site home
    approver  signs release approvals; each approver holds their own key, never on the site

A client pins the root at registration and accepts version N+1 only when a threshold of
version N's root keys *and* a threshold of its own root keys signed it (the root chain).
So whoever holds the site home (database and online key) can neither change the online
keys nor the approvers, nor switch approval off: all three are in the root.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import SignatureError
from quartermaster.core.hashing import sha256_bytes
from quartermaster.core.program import ProgramSpec
from quartermaster.core.signing import PublicKey, SigningKey

ROOT_TYPE = "root"
ROLES = ("root", "online", "approver")
APPROVAL_TYPE = "release_approval"
ANY_COLLECTION = "*"


@dataclass(frozen=True)
class Role:
    keyids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class Root:
    """A verified root metadata payload, and its envelope as the site serves it."""

    site_code: str
    version: int
    keys: dict[str, PublicKey]
    roles: dict[str, Role]
    envelope: dict[str, Any]

    def role_keys(self, role: str) -> dict[str, PublicKey]:
        return {k: self.keys[k] for k in self.roles[role].keyids}

    @property
    def online_keys(self) -> dict[str, PublicKey]:
        return self.role_keys("online")

    @property
    def approval_threshold(self) -> int:
        """0: this site does not require release approval."""
        return self.roles["approver"].threshold

    @classmethod
    def parse(cls, envelope: Any) -> Root:
        """The structure only; signatures are checked by `trust_first_root` / `next_root`."""
        payload = envelope.get("signed") if isinstance(envelope, dict) else None
        if not isinstance(payload, dict) or payload.get("type") != ROOT_TYPE:
            raise SignatureError("the object is not root metadata")
        version, site_code = payload.get("version"), payload.get("site_code")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise SignatureError("root metadata has no valid version")
        if not isinstance(site_code, str) or not site_code:
            raise SignatureError("root metadata names no site")
        raw_keys = payload.get("keys")
        if not isinstance(raw_keys, dict):
            raise SignatureError("root metadata has no key table")
        keys: dict[str, PublicKey] = {}
        for keyid, public_hex in raw_keys.items():
            try:
                key = PublicKey.from_hex(str(public_hex))
            except ValueError:
                raise SignatureError(f"root key {keyid} is not hex") from None
            if key.keyid != keyid:
                raise SignatureError(f"root key id {keyid} does not match its key")
            keys[keyid] = key
        raw_roles = payload.get("roles")
        if not isinstance(raw_roles, dict):
            raise SignatureError("root metadata has no roles")
        roles: dict[str, Role] = {}
        for name in ROLES:
            entry = raw_roles.get(name)
            if not isinstance(entry, dict):
                raise SignatureError(f"root metadata has no {name} role")
            keyids, threshold = entry.get("keyids"), entry.get("threshold")
            if not isinstance(keyids, list) or not all(k in keys for k in keyids):
                raise SignatureError(f"the {name} role names a key the root does not list")
            if not isinstance(threshold, int) or isinstance(threshold, bool):
                raise SignatureError(f"the {name} role has no threshold")
            low = 0 if name == "approver" else 1
            if not low <= threshold <= len(set(keyids)):
                raise SignatureError(
                    f"the {name} role needs {threshold} of {len(set(keyids))} keys: impossible"
                )
            roles[name] = Role(tuple(keyids), threshold)
        return cls(site_code, version, keys, roles, envelope)


def root_payload(
    site_code: str,
    version: int,
    root_keys: Sequence[PublicKey],
    root_threshold: int,
    online_keys: Sequence[PublicKey],
    approver_keys: Sequence[PublicKey],
    approval_threshold: int,
) -> dict[str, Any]:
    every = {k.keyid: k.public_hex for k in (*root_keys, *online_keys, *approver_keys)}
    return {
        "type": ROOT_TYPE,
        "site_code": site_code,
        "version": version,
        "keys": every,
        "roles": {
            "root": {"keyids": _ids(root_keys), "threshold": root_threshold},
            "online": {"keyids": _ids(online_keys), "threshold": 1},
            "approver": {"keyids": _ids(approver_keys), "threshold": approval_threshold},
        },
    }


def _ids(keys: Sequence[PublicKey]) -> list[str]:
    return sorted({k.keyid for k in keys})


def valid_signers(envelope: Any, keys: dict[str, PublicKey]) -> set[str]:
    """The distinct keys of `keys` whose signature over the payload verifies."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict):
        return set()
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        return set()
    data = canonical_json(envelope["signed"])
    found: set[str] = set()
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        keyid = str(entry.get("keyid"))
        key = keys.get(keyid)
        if key is not None and keyid not in found and key.verify(str(entry.get("sig", "")), data):
            found.add(keyid)
    return found


def add_signature(envelope: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The envelope with `key`'s signature added (replacing an earlier one by the same key)."""
    others = [s for s in envelope.get("signatures") or [] if s.get("keyid") != key.keyid]
    sig = {"keyid": key.keyid, "sig": key.sign(canonical_json(envelope["signed"]))}
    return {"signed": envelope["signed"], "signatures": [*others, sig]}


def trust_first_root(envelope: Any) -> Root:
    """A root taken on first use (registration): it must at least be signed by a threshold
    of its own root keys, so a damaged or half-signed file is never pinned."""
    root = Root.parse(envelope)
    _need(envelope, root.role_keys("root"), root.roles["root"].threshold, f"root {root.version}")
    return root


def next_root(current: Root, envelope: Any) -> Root:
    """Root version N+1, if a threshold of N's root keys and of its own root keys signed it."""
    new = Root.parse(envelope)
    if new.site_code != current.site_code:
        raise SignatureError(f"root metadata of site {new.site_code}, not {current.site_code}")
    if new.version != current.version + 1:
        raise SignatureError(
            f"root version {new.version} does not follow version {current.version}",
            "a root is only accepted one version at a time",
        )
    _need(
        envelope,
        current.role_keys("root"),
        current.roles["root"].threshold,
        f"root {new.version} by the keys of root {current.version}",
    )
    _need(envelope, new.role_keys("root"), new.roles["root"].threshold, f"root {new.version}")
    return new


def follow_roots(current: Root, envelopes: Sequence[Any]) -> Root:
    for envelope in envelopes:
        current = next_root(current, envelope)
    return current


def _need(envelope: Any, keys: dict[str, PublicKey], threshold: int, what: str) -> None:
    count = len(valid_signers(envelope, keys))
    if count < threshold:
        raise SignatureError(
            f"{what} has {count} valid root signatures, {threshold} needed",
            "a new root must be signed with `qm keys root sign` by enough root key holders",
        )


# --- release approval -------------------------------------------------------------------


_CODES = ("success_codes", "reboot_codes", "retry_codes")
_PROGRAM_FIELDS = ProgramSpec("x", "x").to_dict()


def program_digest(spec: Any) -> str:
    """The SHA-256 of a program as it runs: every field, defaults filled in, so the compact
    form policy carries and the full form the site stores give the same digest. (Cheap on
    purpose: a client computes one per deployment at every policy change.)"""
    if not isinstance(spec, dict):
        raise ValueError("a program is an object")
    full = {**_PROGRAM_FIELDS, **{k: v for k, v in spec.items() if k in _PROGRAM_FIELDS}}
    for key in _CODES:
        full[key] = [int(c) for c in full[key]]
    text = json.dumps(full, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_bytes(text.encode("utf-8"))


def json_digest(value: Any) -> str:
    return sha256_bytes(canonical_json(value))


def release_statement(
    site_code: str,
    package_id: str,
    source_version: int,
    package_hash: str,
    programs: dict[str, str],
    collections: Sequence[str],
    application: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What an approver signs: exactly this package version and these program commands
    (`programs`: name -> program_digest), or an application revision (install/uninstall
    command and detection digests), allowed into these collections (ANY_COLLECTION: all)."""
    return {
        "type": APPROVAL_TYPE,
        "site_code": site_code,
        "package_id": package_id,
        "source_version": source_version,
        "package_hash": package_hash,
        "programs": dict(sorted(programs.items())),
        "collections": sorted(set(collections)),
        "application": application,
    }


def application_terms(
    app_id: str,
    revision: int,
    install: Any,
    uninstall: Any,
    detection: Any,
    run_as: str,
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "revision": revision,
        "install": program_digest(install),
        "uninstall": program_digest(uninstall) if uninstall else None,
        "detection": json_digest(detection),
        "run_as": run_as,
    }
