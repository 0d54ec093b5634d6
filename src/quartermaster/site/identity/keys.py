"""The site's signing keys: one primary key, and older keys that co-sign during a rotation.

    keys/signing.key          the primary key (the newest); it signs everything
    keys/overlap/<id>.key     keys rotated out but not yet retired: they still co-sign, so a
                              client or DP that knows only an old key follows the rotation
    keys/keyring.json         {"version": N, "created": {keyid: time}}; N grows with every
                              rotation and retirement (DPs refuse an older signed key list)

Every envelope carries one signature per active key. Policy and the DP assignment answer
list the active keys, signed by all of them, so clients and DPs replace their trusted keys
without registering again. A retired key signs nothing more; anything that trusts only the
retired key must register (or enroll) again.

The files are re-read when they change, so a running `qm site serve` follows
`qm site rotate-key` and `qm site retire-key` without a restart.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.signing import (
    PublicKey,
    SigningKey,
    key_list_payload,
    sign_envelope,
)
from quartermaster.site.models import PackageVersion
from quartermaster.site.policy_serial import bump_policy_serial

PRIMARY = "signing.key"
OVERLAP = "overlap"
KEYRING = "keyring.json"


@dataclass(frozen=True)
class KeyInfo:
    keyid: str
    public_key: str
    role: str  # "primary" or "overlap"
    created: str

    def to_dict(self) -> dict[str, str]:
        return {
            "keyid": self.keyid,
            "public_key": self.public_key,
            "role": self.role,
            "created": self.created,
        }


class SiteKeys:
    """The active keys of a site home, reloaded when their files change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._generation: tuple[Any, ...] | None = None
        self._signers: list[SigningKey] = []
        self._version = 1
        self._created: dict[str, str] = {}
        self._refresh()

    # --- what signing code uses ---------------------------------------------------------

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` signed by every active key, primary first."""
        return sign_envelope(payload, self.signers())

    def signers(self) -> list[SigningKey]:
        self._refresh()
        return list(self._signers)

    def public_keys(self) -> list[PublicKey]:
        return [key.public for key in self.signers()]

    @property
    def primary(self) -> SigningKey:
        return self.signers()[0]

    @property
    def keyid(self) -> str:
        return self.primary.keyid

    @property
    def version(self) -> int:
        self._refresh()
        return self._version

    def key_list_envelope(self, site_code: str) -> dict[str, Any]:
        """The signed list of active keys, as a DP receives it with its assignments."""
        self._refresh()
        signers = list(self._signers)
        payload = key_list_payload(site_code, self._version, [k.public for k in signers])
        return sign_envelope(payload, signers)

    def describe(self) -> list[KeyInfo]:
        signers = self.signers()
        return [
            KeyInfo(
                k.keyid,
                k.public.public_hex,
                "primary" if i == 0 else "overlap",
                self._created.get(k.keyid, ""),
            )
            for i, k in enumerate(signers)
        ]

    # --- loading ------------------------------------------------------------------------

    def _refresh(self) -> None:
        generation = _generation(self.folder)
        if generation == self._generation:
            return
        with self._lock:
            if generation == self._generation:
                return
            primary_path = self.folder / PRIMARY
            if not primary_path.is_file():
                raise NotFound(
                    f"the site's signing key {primary_path} is missing",
                    "restore the site home's keys/ folder from a backup",
                )
            signers = [SigningKey.load(primary_path)]
            for path in sorted((self.folder / OVERLAP).glob("*.key")):
                key = SigningKey.load(path)
                if key.keyid != signers[0].keyid:
                    signers.append(key)
            state = _read_keyring(self.folder)
            self._signers = signers
            self._version = int(state.get("version") or 1)
            self._created = dict(state.get("created") or {})
            self._generation = generation


def _generation(folder: Path) -> tuple[Any, ...]:
    """Changes whenever a key file or the keyring is replaced (writes are atomic renames)."""
    parts: list[Any] = []
    for name in (PRIMARY, KEYRING):
        try:
            st = os.stat(folder / name)
            parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            parts.append(None)
    try:
        parts.append(tuple(sorted(os.listdir(folder / OVERLAP))))
    except FileNotFoundError:
        parts.append(())
    return tuple(parts)


def _read_keyring(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / KEYRING).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise InvalidInput(
            f"{folder / KEYRING} is damaged: {exc}",
            'restore it from a backup, or write {"version": N} with N above '
            "every version the site has issued",
        ) from None
    return data if isinstance(data, dict) else {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_keyring(folder: Path, version: int, created: dict[str, str]) -> None:
    data = {"version": version, "created": created}
    write_atomic(
        folder / KEYRING, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", mode=0o600
    )


def create_first_key(folder: Path) -> SigningKey:
    """The key `qm site init` makes."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key = SigningKey.generate()
    key.save(folder / PRIMARY)
    _write_keyring(folder, 1, {key.keyid: _now()})
    return key


def rotate_files(folder: Path) -> tuple[SigningKey, SigningKey]:
    """Make a new primary key; the old primary keeps co-signing. Returns (old, new).

    Order matters for a crash at any point: the old key is first copied to the overlap
    folder, then the new key replaces the primary, then the version grows.
    """
    keys = SiteKeys(folder)
    old = keys.primary
    state = _read_keyring(folder)
    created = dict(state.get("created") or {})
    overlap = folder / OVERLAP
    overlap.mkdir(mode=0o700, exist_ok=True)
    old.save(overlap / f"{old.keyid}.key")
    new = SigningKey.generate()
    new.save(folder / PRIMARY)
    created.setdefault(old.keyid, "")
    created[new.keyid] = _now()
    _write_keyring(folder, int(state.get("version") or 1) + 1, created)
    return old, new


def retire_files(folder: Path, keyid: str) -> PublicKey:
    """Stop signing with an overlap key and delete it. The primary key cannot be retired."""
    keys = SiteKeys(folder)
    if keyid == keys.keyid:
        raise Conflict(
            f"key {keyid} is the primary signing key and cannot be retired",
            "rotate first (`qm site rotate-key`), then retire the old key",
        )
    path = folder / OVERLAP / f"{keyid}.key"
    if not path.is_file():
        active = ", ".join(k.keyid for k in keys.signers())
        raise NotFound(
            f"key {keyid} is not an active signing key of this site",
            f"active keys: {active} (see `qm site keys`)",
        )
    retired = SigningKey.load(path).public
    path.unlink()
    state = _read_keyring(folder)
    created = {k: v for k, v in dict(state.get("created") or {}).items() if k != keyid}
    _write_keyring(folder, int(state.get("version") or 1) + 1, created)
    return retired


def resign_manifests(db: Any, library: Any, keys: SiteKeys) -> int:
    """Give every stored manifest exactly the active keys' signatures; returns how many.

    The signed part (and so the package hash) never changes, only the signatures: after a
    rotation the new key co-signs every published version, and after a retirement the
    retired key's signature is gone. Clients and DPs re-fetch what no longer verifies.
    Also bumps the policy serial, so every client receives the new key list at its next poll.
    """
    count = 0
    with db.session() as session:
        for version in session.scalars(select(PackageVersion)):
            envelope = json.loads(version.manifest)
            signed = keys.envelope(envelope["signed"])
            version.manifest = json.dumps(signed)
            library.write_manifest(version.package_hash, signed)
            count += 1
        bump_policy_serial(session)
    return count
