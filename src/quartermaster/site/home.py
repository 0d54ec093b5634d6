"""The site home folder: where the site keeps its database, content library and keys.

config.json         site code, name, database URL, listen addresses
site.db             the embedded SQLite database (default)
library/            the content library (the store layout of core.store_layout)
keys/               the Ed25519 keys that sign manifests and policy (0700; see site/keys.py)
  signing.key       the primary key (0600); overlap/ holds keys in a rotation's overlap
admin.token         the first administrator's API token (0600)
dp/                 the home of the site's embedded distribution point
logs/               component logs of the site server
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput, NotFound

DEFAULT_LISTEN = "127.0.0.1:8440"


@dataclass
class SiteConfig:
    site_code: str
    name: str
    database_url: str
    listen: str = DEFAULT_LISTEN
    content_listen: str = ""  # the embedded DP's data plane; default: API port + 1
    public_url: str = ""  # how clients reach the API; default: http://<listen>
    content_url: str = ""  # how clients reach the embedded DP; default: http://<content_listen>
    policy_lifetime_days: int = 7
    tls: bool = False  # set in memory by `qm site serve --tls-cert`: default URLs are https
    poll_interval: int = 3600
    extra: dict[str, Any] = field(default_factory=dict)


class SiteHome:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    config_path = property(lambda self: self.root / "config.json")
    database_path = property(lambda self: self.root / "site.db")
    library = property(lambda self: self.root / "library")
    keys = property(lambda self: self.root / "keys")
    signing_key_path = property(lambda self: self.root / "keys" / "signing.key")
    admin_token_path = property(lambda self: self.root / "admin.token")
    dp_home = property(lambda self: self.root / "dp")
    logs = property(lambda self: self.root / "logs")

    def exists(self) -> bool:
        return self.config_path.exists()

    def load_config(self) -> SiteConfig:
        if not self.exists():
            raise NotFound(
                f"{self.root} is not a site home", f"run `qm site init --home {self.root}`"
            )
        data = json.loads(self.config_path.read_text())
        known = {k: v for k, v in data.items() if k in SiteConfig.__dataclass_fields__}
        return SiteConfig(**known)

    def save_config(self, config: SiteConfig) -> None:
        write_atomic(self.config_path, json.dumps(asdict(config), indent=2).encode() + b"\n")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"listen address {listen!r} is not HOST:PORT", "e.g. 127.0.0.1:8440")
    return host.strip("[]"), int(port)


def content_listen(config: SiteConfig) -> str:
    if config.content_listen:
        return config.content_listen
    host, port = split_listen(config.listen)
    return f"{host}:{port + 1}"


def _scheme(config: SiteConfig) -> str:
    return "https" if config.tls else "http"


def public_url(config: SiteConfig) -> str:
    return config.public_url or f"{_scheme(config)}://{config.listen}"


def content_url(config: SiteConfig) -> str:
    return config.content_url or f"{_scheme(config)}://{content_listen(config)}"
