"""The client home: every file the agent keeps on a managed computer, in one folder.

client.json          identity and settings: client_id, site_url, site_code, trusted
                     signing_keys, poll_interval, policy_serial (highest seen, for
                     rollback), policy_etag, cache_limit_bytes, hostname
secret               the client secret issued at registration (mode 0600)
                     root (pinned root metadata), log_seq/log_hash (trust log head seen)
site-ca.pem          the CA (or self-signed certificate) pinned with --ca-file at
                     registration: the only TLS trust for the site and DPs
policy.json          the last verified policy envelope, reused when the site answers 304
approvals-verified.json  approver signatures already verified (key ID, signature, statement
                     digest): each is checked once, not at every poll
manifests/<hash>.json  verified manifest envelopes, by package hash
cache/               downloaded blobs in the store layout (content/sha256/xx/<hash>),
                     shared by every package; `<hash>.part` is a transfer to resume;
                     a chunked file is held whole, its chunks' places in
                     chunkmaps/xx/<hash> (client/cache.py)
work/<deployment>/   the files of one deployment, laid out fresh for each run; deleted
                     after a success, kept failed_work_keep_days after a failure
spool/               one JSON file per status message not yet acknowledged by the site
state.json           per deployment: versions run, result, attempts, next retry
logs/                policyagent.log (policy, decisions), cas.log (content access: DP,
                     blob, bytes, resume, verification), execmgr.log (programs),
                     statusagent.log (status messages raised and delivered), in the
                     CMTrace format, each rotated to <name>.lo_ at log_max_bytes
logs/programs/       each program run's own stdout and stderr

The home is private to the agent's account (0700, files 0600): the agent runs programs as
root, so a local user who could write a laid-out script, or read the secret, the policy,
the logs or the spool, could run code as root or learn what the site tells this computer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.core.component_log import DEFAULT_MAX_BYTES, ComponentLog
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import Conflict, InvalidInput, NotFound
from quartermaster.core.signing import PublicKey
from quartermaster.core.tls import pinned_context
from quartermaster.core.trust_roles import Root

DEFAULT_CACHE_LIMIT = 5 * 1024**3
DEFAULT_POLL_INTERVAL = 3600
CA_FILE = "site-ca.pem"
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
RESERVE = ".reserve"  # room kept free for status messages and state when the disk fills
RESERVE_BYTES = 256 * 1024
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def write_private(path: Path, data: bytes) -> None:
    """write_atomic, 0600; on a full disk the home's reserve is given up and it is tried
    again, so the status message saying the disk is full can still be spooled."""
    try:
        write_atomic(path, data, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno not in FULL_DISK or not _release_reserve(path.parent):
            raise
        write_atomic(path, data, PRIVATE_FILE)


def _release_reserve(folder: Path) -> bool:
    """Remove the reserve of the home that holds `folder` (the home or a few levels below)."""
    for candidate in (p / RESERVE for p in [folder, *folder.parents][:4]):
        if candidate.is_file():
            candidate.unlink()
            return True
    return False


@dataclass
class ClientConfig:
    client_id: str
    site_url: str
    site_code: str
    signing_keys: list[dict[str, str]] = field(default_factory=list)
    poll_interval: int = DEFAULT_POLL_INTERVAL
    policy_serial: int = 0
    policy_etag: str = ""
    cache_limit_bytes: int = DEFAULT_CACHE_LIMIT
    hostname: str = ""
    ca_file: str = ""  # name of the pinned CA file in the home; "" trusts the system's CAs
    properties: dict[str, str] = field(default_factory=dict)  # custom, for collection rules
    inventory_digest: str = ""  # of the facts last reported (machine_facts.inventory_digest)
    log_max_bytes: int = DEFAULT_MAX_BYTES  # a component log is rotated to .lo_ at this size
    failed_work_keep_days: int = 7  # a failed run's work folder is kept this long (cleanup.py)
    # The pinned root metadata (core/trust_roles.py); while set, only its online keys sign
    # policy and manifests, and the site's `signing_keys` are ignored.
    root: dict[str, Any] | None = None
    log_seq: int = 0  # the newest trust log head seen (core/log_chain.py)
    log_hash: str = ""

    def pinned_root(self) -> Root | None:
        return Root.parse(self.root) if self.root else None

    def trusted_keys(self) -> dict[str, PublicKey]:
        """Keys are re-derived from the public key, so a wrong keyid in the file cannot match."""
        root = self.pinned_root()
        if root is not None:
            return root.online_keys
        keys = (PublicKey.from_hex(entry["public_key"]) for entry in self.signing_keys)
        return {key.keyid: key for key in keys}

    @classmethod
    def from_dict(cls, data: Any) -> ClientConfig:
        if not isinstance(data, dict):
            raise InvalidInput("client.json is not a JSON object", "re-register with --force")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as exc:
            raise InvalidInput(
                f"client.json is incomplete: {exc}", "re-register with --force"
            ) from None


class ClientHome:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()  # programs get an absolute working folder
        self.config_path = root / "client.json"
        self.secret_path = root / "secret"
        self.ca_path = root / CA_FILE
        self.policy_path = root / "policy.json"
        self.state_path = root / "state.json"
        self.manifests = root / "manifests"
        self.cache = root / "cache"
        self.work = root / "work"
        self.spool = root / "spool"
        self.logs = root / "logs"
        self.program_logs = self.logs / "programs"
        self._log_max_bytes: int | None = None

    def make_private(self) -> None:
        """Create the home 0700 and take group and other access off what is in it already
        (a home made by an older version): the folders 0700, the files 0600, one level
        down into spool/ and logs/. The home's own mode alone keeps other accounts out."""
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
        os.chmod(self.root, PRIVATE_FOLDER)
        for path in [*_entries(self.root), *_entries(self.spool), *_entries(self.logs)]:
            if path.is_symlink():
                continue
            mode = PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path, mode)

    def keep_reserve(self) -> None:
        """Hold RESERVE_BYTES in a file, if the disk has them, for write_private to free."""
        path = self.root / RESERVE
        if path.is_file() and path.stat().st_size == RESERVE_BYTES:
            return
        try:
            write_atomic(path, bytes(RESERVE_BYTES), PRIVATE_FILE)
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                raise

    def is_registered(self) -> bool:
        return self.config_path.is_file() and self.secret_path.is_file()

    def ensure_unregistered(self) -> None:
        if self.is_registered():
            raise Conflict(
                f"{self.root} already holds a registered client",
                "pass --force to register again with a new identity, or use another --home",
            )

    def load_config(self) -> ClientConfig:
        if not self.is_registered():
            raise NotFound(
                f"{self.root} is not a registered client home",
                f"run `qm client register --home {self.root} --site URL` first",
            )
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(
                f"cannot read {self.config_path}: {exc}", "re-register with --force"
            ) from None
        return ClientConfig.from_dict(data)

    def save_config(self, config: ClientConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
        text = json.dumps(asdict(config), indent=2, sort_keys=True) + "\n"
        write_private(self.config_path, text.encode("utf-8"))

    def read_secret(self) -> str:
        try:
            return self.secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NotFound(
                f"cannot read the client secret: {exc}",
                f"re-register with `qm client register --home {self.root} --force`",
            ) from None

    def write_secret(self, secret: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_FOLDER)
        write_atomic(self.secret_path, secret.encode("utf-8") + b"\n", mode=PRIVATE_FILE)

    def log(self, component: str) -> ComponentLog:
        return ComponentLog(self.logs, component, self.log_max_bytes())

    def log_max_bytes(self) -> int:
        """The rotation size from client.json, read once; the default before registration."""
        if self._log_max_bytes is None:
            try:
                data = json.loads(self.config_path.read_text(encoding="utf-8"))
                value = data.get("log_max_bytes", DEFAULT_MAX_BYTES)
                self._log_max_bytes = value if isinstance(value, int) and value > 0 else None
            except (OSError, ValueError, AttributeError):
                pass
        return self._log_max_bytes or DEFAULT_MAX_BYTES

    def ssl_context(self, config: ClientConfig) -> ssl.SSLContext | None:
        """TLS trust for every call: the pinned CA, or None for the system's CAs."""
        if not config.ca_file:
            return None
        path = self.root / config.ca_file
        if not path.is_file():
            raise NotFound(
                f"the pinned CA file {path} is missing",
                "re-register with `qm client register --force --ca-file FILE`",
            )
        return pinned_context(path)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
