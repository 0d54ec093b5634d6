"""A distribution point's home folder: who it is, what it holds, what it logged.

dp.json            identity and credential from enrollment (0600, never served): the
                   site's public signing keys (never a private key) and their version
site-ca.pem        the CA pinned with --ca-file at enrollment: the only TLS trust for
                   the site, the content library and other DPs
store/             the content store (the only folder the content server serves); for a
                   store in a bucket (`--store s3://…`), the staging of blobs on their way
validation.json    when each held version was last re-hashed
distmgr.log        the component log
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from quartermaster.core.component_log import ComponentLog
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput, NotFound
from quartermaster.core.signing import PublicKey
from quartermaster.core.tls import pinned_context
from quartermaster.dp.site_link import Enrollment
from quartermaster.dp.store import DPStore


@dataclass(frozen=True)
class DPIdentity:
    site_url: str
    dp: str
    credential: str
    site_code: str
    signing_keys: tuple[dict[str, str], ...]  # [{"keyid": ..., "public_key": ...}]
    url: str = ""  # the public URL given at enrollment
    ca_file: str = ""  # name of the pinned CA file in the DP home; "" trusts the system's CAs
    keys_version: int = 0  # version of the last signed key list accepted (rollback guard)
    store: str = ""  # "" for store/ in the home, or s3://bucket/prefix?endpoint=… (s3_store.py)

    @classmethod
    def from_enrollment(cls, site_url: str, enrollment: Enrollment, url: str = "") -> DPIdentity:
        keys = tuple(k.to_dict() for k in enrollment.signing_keys)
        return cls(
            site_url.rstrip("/"),
            enrollment.dp,
            enrollment.credential,
            enrollment.site_code,
            keys,
            url,
        )

    def trusted_keys(self) -> dict[str, PublicKey]:
        keys = (PublicKey.from_hex(k["public_key"]) for k in self.signing_keys)
        return {key.keyid: key for key in keys}


CA_FILE = "site-ca.pem"


class DPHome:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.identity_path = root / "dp.json"
        self.ca_path = root / CA_FILE
        self.store_root = root / "store"
        self.validation_path = root / "validation.json"

    def ensure(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store_root.mkdir(exist_ok=True)

    def store(self, identity: DPIdentity | None = None) -> DPStore:
        """The local store/, or the bucket the identity names (staging in store/ then)."""
        if identity is not None and identity.store:
            from quartermaster.core.s3_location import S3Location
            from quartermaster.dp.s3_store import S3Store

            return S3Store(S3Location.parse(identity.store), self.store_root)
        return DPStore(self.store_root)

    def log(self) -> ComponentLog:
        self.ensure()
        return ComponentLog(self.root, "distmgr")

    def load_identity(self) -> DPIdentity | None:
        try:
            data = json.loads(self.identity_path.read_text(encoding="utf-8"))
            data["signing_keys"] = tuple(data["signing_keys"])
            return DPIdentity(**data)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"{self.identity_path} is damaged: {exc}",
                "delete it and enroll again with a new token",
            ) from None

    def save_identity(self, identity: DPIdentity) -> None:
        """Written 0600: the credential lets anyone act as this DP."""
        self.ensure()
        data = json.dumps(asdict(identity), indent=2).encode()
        write_atomic(self.identity_path, data, mode=0o600)
        os.chmod(self.identity_path, 0o600)

    def pin_ca(self, identity: DPIdentity, ca_bytes: bytes | None) -> DPIdentity:
        """Pin `ca_bytes` (checked by the caller) for every later call; None unpins."""
        self.ensure()
        if ca_bytes is None:
            self.ca_path.unlink(missing_ok=True)
            return replace(identity, ca_file="")
        write_atomic(self.ca_path, ca_bytes)
        return replace(identity, ca_file=self.ca_path.name)

    def ssl_context(self, identity: DPIdentity) -> ssl.SSLContext | None:
        """TLS trust for the site, the library and other DPs: the pinned CA, or the system's."""
        if not identity.ca_file:
            return None
        path = self.root / identity.ca_file
        if not path.is_file():
            raise NotFound(
                f"the pinned CA file {path} is missing",
                "start the DP with --ca-file FILE to pin the site's CA again",
            )
        return pinned_context(path)

    def load_validation_times(self) -> dict[str, float]:
        try:
            data: Any = json.loads(self.validation_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save_validation_times(self, times: dict[str, float]) -> None:
        self.ensure()
        write_atomic(self.validation_path, json.dumps(times, sort_keys=True).encode())
