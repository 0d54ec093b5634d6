"""The systemd unit of the client agent: written by `qm client install-service`.

The agent installs software, so it usually runs as root and its programs may write anywhere
a package manager writes (/usr, /etc, /opt, /var, kernel modules, setuid bits); the unit
therefore only applies the sandboxing that no installer needs, and says why for each line.
With `--user NAME` (programs that install into places that account may write) the stricter
set applies: no new privileges, a read-only system apart from the home.

The service runs `python -m quartermaster.client run --home DIR` (client/__main__.py), the
agent without the `qm` command line, to keep its resident size small. SIGTERM (systemctl
stop, shutdown) goes to the agent alone (KillMode=mixed): it stops the current download or
program safely, spools its status and exits; systemd kills what is left only after
TimeoutStopSec.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

from quartermaster.client.home import ClientHome
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import Conflict, InvalidInput, NotFound

UNIT_NAME = "qm-client.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")

_ROOT_SANDBOX = """\
# Sandboxing that leaves installs as root working (see docs/operations.md for each line):
# programs may still write /usr, /etc, /opt, /var, load kernel modules and set setuid bits.
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
PrivateTmp=yes
UMask=0022
"""

_USER_SANDBOX = """\
# Sandboxing for an agent that runs as {user}: it installs only where {user} may write.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={home}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=
UMask=0077
"""


def unit_text(home: Path, user: str = "", python: str = "") -> str:
    """The unit for an agent with its home at `home`, run as root or as `user`."""
    home = home.expanduser().absolute()
    _check_path(home)
    python = python or sys.executable
    _check_path(Path(python))
    sandbox = _USER_SANDBOX.format(user=user, home=home) if user else _ROOT_SANDBOX
    account = f"User={user}\nGroup={user}\n" if user else "User=root\n"
    return f"""\
# Written by `qm client install-service`; remove with `qm client uninstall-service`.
[Unit]
Description=Quartermaster client agent ({home})
Documentation=man:systemd.exec(5)
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart={python} -m quartermaster.client run --home {home}
{account}WorkingDirectory={home}
# Proxy variables (HTTPS_PROXY, NO_PROXY, ...) for the site and the DPs, if any.
EnvironmentFile=-/etc/default/qm-client
Environment=PYTHONUNBUFFERED=1
# SIGTERM to the agent alone: it stops a download or program safely and spools its status.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=120
Restart=on-failure
RestartSec=30
# The agent rotates its own logs (HOME/logs, .lo_ at 250,000 bytes): no logrotate needed.
StandardOutput=journal
StandardError=journal
{sandbox}
[Install]
WantedBy=multi-user.target
"""


def _check_path(path: Path) -> None:
    """systemd splits ExecStart on spaces and expands % and $: refuse what it would misread."""
    text = str(path)
    if any(c in text for c in " \t\n\"'%$\\;"):
        raise InvalidInput(
            f"{text!r} has a character a systemd unit line cannot carry as is",
            "use a path without spaces, quotes, %, $, backslashes or semicolons",
        )


def install_unit(text: str, unit_dir: Path = SYSTEM_UNIT_DIR, name: str = UNIT_NAME) -> Path:
    """Write the unit (mode 0644, atomically); returns its path."""
    if not unit_dir.is_dir():
        raise NotFound(f"{unit_dir} does not exist", "is this a systemd system?")
    path = unit_dir / name
    write_atomic(path, text.encode("utf-8"), mode=0o644)
    os.chmod(path, 0o644)
    return path


def uninstall_unit(unit_dir: Path = SYSTEM_UNIT_DIR, name: str = UNIT_NAME) -> Path:
    """Remove the unit that install_unit wrote; refuses a file it did not write."""
    path = unit_dir / name
    if not path.exists():
        raise NotFound(f"{path} does not exist", "nothing to uninstall")
    if "qm client install-service" not in path.read_text(encoding="utf-8", errors="replace"):
        raise InvalidInput(
            f"{path} was not written by `qm client install-service`", "remove it by hand"
        )
    try:
        path.unlink()
    except PermissionError as exc:
        raise InvalidInput(f"cannot remove {path}: {exc.strerror}", "run it as root") from None
    return path


def install_service(
    home: ClientHome,
    site_url: str,
    user: str = "",
    ca_file: Path | None = None,
    unit_dir: Path = SYSTEM_UNIT_DIR,
) -> tuple[Path, str]:
    """Register the home with `site_url` unless it already is (with that site), give it to
    `user` if one is named, and write the unit. Returns the unit's path and the client ID."""
    owner = _account(user) if user else None
    text = unit_text(home.root, user)  # checks the paths before anything is changed
    if home.is_registered():
        config = home.load_config()
        if config.site_url.rstrip("/") != site_url.rstrip("/"):
            raise Conflict(
                f"{home.root} is registered with {config.site_url}, not {site_url}",
                "use that site, or register again with `qm client register --force`",
            )
    else:
        from quartermaster.client.registration import register

        config = register(home, site_url, ca_file=ca_file)
    if owner is not None:
        for root, dirs, files in os.walk(home.root):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)
        os.chown(home.root, owner.pw_uid, owner.pw_gid)
    try:
        path = install_unit(text, unit_dir)
    except PermissionError as exc:
        raise InvalidInput(
            f"cannot write the unit into {unit_dir}: {exc.strerror}", "run it as root"
        ) from None
    return path, config.client_id


def _account(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise NotFound(
            f"there is no account {user!r} on this computer", "create it first"
        ) from None
