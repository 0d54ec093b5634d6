"""Run as: the account a program runs under, and the clean world it gets there.

``system`` is the agent's own account (root for a system-wide agent). ``user:NAME`` is a
named local account: the program runs with that account's uid, primary gid and
supplementary groups, its HOME, USER, LOGNAME and SHELL and a fixed PATH, nothing else of
the agent's environment, in a private copy of the package files owned by that account
(under the system temp folder, removed afterwards) so that it can neither read nor change
the agent's home. Switching accounts needs the agent to run as root; otherwise only its own
account is accepted. On Windows and macOS the meanings are documented in
docs/applications.md; this agent implements them on POSIX systems.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quartermaster.core.errors import InvalidInput

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RunAsError(InvalidInput):
    code = "run_as"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            "HOME": self.home,
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": self.shell or "/bin/sh",
            "PATH": SAFE_PATH,
            "LANG": "C.UTF-8",
            **extra,
        }


def account_for(run_context: str) -> Account | None:
    """None for the agent's own account; the named account, or why it cannot be used."""
    if run_context == "system":
        return None
    kind, _, name = run_context.partition(":")
    if kind != "user" or not name:
        raise RunAsError(
            f"run context {run_context!r} names no account",
            "set the program's run context to system or user:NAME",
        )
    if sys.platform == "win32":
        raise RunAsError("running as another account is not supported on Windows yet")
    import grp  # noqa: F401 - POSIX only
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RunAsError(
            f"there is no local account {name!r} on this computer",
            "create the account, or deploy to computers that have it",
        ) from None
    if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
        raise RunAsError(
            f"the agent runs as uid {os.geteuid()}, not root, so it cannot run as {name}",
            "run the agent as root to run programs as other accounts",
        )
    groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
    return Account(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir, entry.pw_shell)


def private_copy(folder: Path, account: Account) -> Path:
    """The package files in a fresh folder only `account` (and root) may enter."""
    private = Path(tempfile.mkdtemp(prefix="qm-run-"))
    copy = private / "package"
    shutil.copytree(folder, copy, symlinks=True)
    for root, dirs, files in os.walk(private):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), account.uid, account.gid)
    os.chown(private, account.uid, account.gid)
    os.chmod(private, 0o700)
    return copy
