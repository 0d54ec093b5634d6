"""Ed25519 signing of canonical JSON envelopes: {"signed": {...}, "signatures": [...]}.

The envelope form lets a client trust several keys at once, which is what key rotation
with an overlap needs: the site signs with the new key while clients still know the old.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from quartermaster.core.canonical import canonical_json
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import SignatureError
from quartermaster.core.hashing import sha256_bytes


def key_id(public_raw: bytes) -> str:
    return sha256_bytes(public_raw)[:16]


@dataclass(frozen=True)
class PublicKey:
    keyid: str
    public_hex: str

    @classmethod
    def from_hex(cls, public_hex: str) -> PublicKey:
        raw = bytes.fromhex(public_hex)
        if len(raw) != 32:
            raise SignatureError("an Ed25519 public key is 32 bytes")
        return cls(key_id(raw), public_hex)

    def verify(self, signature_hex: str, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_hex)).verify(
                bytes.fromhex(signature_hex), data
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "public_key": self.public_hex}


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(key_id(raw), raw.hex())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def save(self, path: Path) -> None:
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(path, pem, mode=0o600)
        os.chmod(path, 0o600)

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, data: bytes) -> str:
        return self._private.sign(data).hex()

    def envelope(self, payload: dict[str, Any]) -> dict[str, Any]:
        return sign_envelope(payload, [self])


def sign_envelope(payload: dict[str, Any], keys: Sequence[SigningKey]) -> dict[str, Any]:
    """One signature per key: during a rotation's overlap both old and new keys sign."""
    data = canonical_json(payload)
    seen: set[str] = set()
    signatures = []
    for key in keys:
        if key.keyid not in seen:
            seen.add(key.keyid)
            signatures.append({"keyid": key.keyid, "sig": key.sign(data)})
    return {"signed": payload, "signatures": signatures}


def parse_public_keys(entries: Any) -> list[PublicKey]:
    """`[{"keyid", "public_key"}, ...]` as the protocol carries it; a keyid must match its key."""
    if not isinstance(entries, list) or not entries:
        raise SignatureError(
            "the list of signing keys is missing or empty",
            "the site always names at least one signing key",
        )
    keys: list[PublicKey] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise SignatureError("a signing key entry is not an object")
        try:
            key = PublicKey.from_hex(str(entry.get("public_key")))
        except ValueError:
            raise SignatureError("a signing key is not hex") from None
        if entry.get("keyid") != key.keyid:
            raise SignatureError(
                f"signing key id {entry.get('keyid')!r} does not match its key",
                "the key ID is the first 16 hex digits of the key's SHA-256",
            )
        keys.append(key)
    return keys


KEY_LIST_TYPE = "signing_keys"


def key_list_payload(site_code: str, version: int, keys: Sequence[PublicKey]) -> dict[str, Any]:
    """The signed statement "these are the site's signing keys now" that DPs follow."""
    return {
        "type": KEY_LIST_TYPE,
        "site_code": site_code,
        "version": version,
        "keys": [k.to_dict() for k in keys],
    }


def accept_key_list(
    envelope: Any, trusted: dict[str, PublicKey], *, site_code: str, min_version: int
) -> tuple[int, list[PublicKey]]:
    """The site's current keys, if a trusted key signed the list and it is not older than seen.

    This is how a DP learns a rotated key without enrolling again; a replayed older list
    (which could bring back a retired key) is refused.
    """
    payload = verify_envelope(envelope, trusted)
    version = payload.get("version")
    if payload.get("type") != KEY_LIST_TYPE or payload.get("site_code") != site_code:
        raise SignatureError("the signed key list is not this site's list of signing keys")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SignatureError("the signed key list has no valid version")
    if version < min_version:
        raise SignatureError(
            f"the signed key list has version {version}, lower than "
            f"{min_version} already seen (rollback)",
            "an old key list was replayed; the current keys stay",
        )
    return version, parse_public_keys(payload.get("keys"))


def verify_envelope(envelope: Any, trusted: dict[str, PublicKey]) -> dict[str, Any]:
    """Return the signed payload if a trusted key signed it; raise SignatureError otherwise."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict):
        raise SignatureError("metadata is not a signed envelope", "the server sent something else")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("metadata is not signed", "refusing unsigned metadata")
    data = canonical_json(envelope["signed"])
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        key = trusted.get(str(entry.get("keyid")))
        if key is not None and key.verify(str(entry.get("sig", "")), data):
            payload: dict[str, Any] = envelope["signed"]
            return payload
    raise SignatureError(
        "metadata is not signed by a key this client trusts",
        "if the site rotated its key, the client learns the new key from policy signed by the "
        "old one; otherwise re-register the client",
    )
