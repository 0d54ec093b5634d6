"""A distribution point's home folder: who it is, what it holds, what it logged.

    dp.json            identity and credential from enrollment (0600, never served)
    store/             the content store (the only folder the content server serves)
    validation.json    when each held version was last re-hashed
    distmgr.log        the component log
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quartermaster.core.component_log import ComponentLog
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput
from quartermaster.core.signing import PublicKey
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

    @classmethod
    def from_enrollment(cls, site_url: str, enrollment: Enrollment, url: str = "") -> DPIdentity:
        keys = tuple(k.to_dict() for k in enrollment.signing_keys)
        return cls(site_url.rstrip("/"), enrollment.dp, enrollment.credential,
                   enrollment.site_code, keys, url)

    def trusted_keys(self) -> dict[str, PublicKey]:
        keys = (PublicKey.from_hex(k["public_key"]) for k in self.signing_keys)
        return {key.keyid: key for key in keys}


class DPHome:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.identity_path = root / "dp.json"
        self.store_root = root / "store"
        self.validation_path = root / "validation.json"

    def ensure(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.store_root.mkdir(exist_ok=True)

    def store(self) -> DPStore:
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
            raise InvalidInput(f"{self.identity_path} is damaged: {exc}",
                               "delete it and enroll again with a new token") from None

    def save_identity(self, identity: DPIdentity) -> None:
        """Written 0600: the credential lets anyone act as this DP."""
        self.ensure()
        data = json.dumps(asdict(identity), indent=2).encode()
        write_atomic(self.identity_path, data, mode=0o600)
        os.chmod(self.identity_path, 0o600)

    def load_validation_times(self) -> dict[str, float]:
        try:
            data: Any = json.loads(self.validation_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save_validation_times(self, times: dict[str, float]) -> None:
        self.ensure()
        write_atomic(self.validation_path, json.dumps(times, sort_keys=True).encode())

