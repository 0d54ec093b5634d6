"""The site home folder: where the site keeps its database, content library and keys.

config.json         site code, name, database URL, listen addresses
site.db             the embedded SQLite database (default)
library/            the content library (the store layout of core.store_layout)
keys/               the Ed25519 keys that sign manifests and policy (0700; site/identity/keys.py)
  signing.key       the primary key (0600); overlap/ holds keys in a rotation's overlap
admin.token         the first administrator's API token (0600)
source-roots        the folders package sources may come from (site/content/source_roots.py)
dp/                 the home of the site's embedded distribution point
logs/               component logs of the site server

The home is 0700 and every file in it 0600: the database holds every account's password
hash and API token hash, the keys sign what every client runs. `qm site serve` runs with
umask 077 and refuses to start while the home, its keys or its database are open to other
users.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.core.chunking import CHUNK_THRESHOLD
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput, NotFound, QMError

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
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); none
    # by default, so a forged header changes nothing (docs/security.md, "Sign-in throttling").
    trusted_proxies: list[str] = field(default_factory=list)
    # Seconds (site/http_limits.py): for a request's headers (also the content plane's idle
    # limit), without a byte of a request body, between two requests on one connection.
    header_timeout: float = 20.0
    idle_timeout: float = 60.0
    keep_alive_timeout: float = 75.0
    registrations_per_minute: int = 60  # per address and site process; 0: no limit
    # "" (the home's library/ folder) or s3://BUCKET/PREFIX?endpoint=... (site/library_bucket.py);
    # never a credential: those come from the environment
    library_url: str = ""
    chunk_threshold: int = CHUNK_THRESHOLD  # bytes: larger files are stored as chunks
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


PRIVATE_UMASK = 0o077  # what the site process creates is its user's alone


class HomeNotPrivate(QMError):
    code = "home_not_private"


def lock_down(home: SiteHome) -> None:
    """Make every folder of the home 0700 and every file 0600 (after `qm site init`)."""
    for folder, _dirs, files in os.walk(home.root):
        os.chmod(folder, 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def sqlite_path(config: SiteConfig) -> Path | None:
    url = config.database_url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def exposed_paths(home: SiteHome, config: SiteConfig) -> list[tuple[Path, int]]:
    """The home, its secrets and its database files that other users may open, with modes."""
    paths = [home.root, home.config_path, home.admin_token_path, home.root / "source-roots"]
    paths += [home.dp_home, home.dp_home / "enrollment.token", home.keys]
    if home.keys.is_dir():
        paths += sorted(home.keys.rglob("*"))
    database = sqlite_path(config)
    if database is not None:
        paths += [database, database.with_name(database.name + "-wal")]
        paths += [database.with_name(database.name + "-shm"), database.parent]
    exposed = []
    for path in dict.fromkeys(paths):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            exposed.append((path, stat.S_IMODE(mode)))
    return exposed


def check_private(home: SiteHome, config: SiteConfig) -> None:
    """Refuse to serve a home whose secrets other local users could read or change."""
    exposed = exposed_paths(home, config)
    if exposed:
        path, mode = exposed[0]
        others = ", ".join(str(p) for p, _ in exposed[1:4])
        folders = [str(home.root)]
        database = sqlite_path(config)
        if database is not None and not database.parent.is_relative_to(home.root):
            folders.append(str(database.parent))
        raise HomeNotPrivate(
            f"{path} is open to other users (mode {mode:04o})"
            + (f"; so are {others}" if others else "")
            + ": they could read the site's keys, tokens and database",
            f"run `chmod -R go-rwx {' '.join(folders)}`, then start the site again",
        )
