"""Entry point of `qm`: every command group lives in its own module.

A group's module is imported only when its group is needed. `qm client run --once` is the
command every managed computer runs on a schedule: importing the site's, DP's and admin
command groups (and the HTTP client, ORM-free models and terminal formatting they pull in)
cost it more than a second of CPU on a busy two-core machine. So `qm GROUP ...` imports
GROUP's own module (and the modules that join commands to it only when the command asked
for is not the module's own); whatever reads the whole command tree (`qm --help`, a
mistyped group, the test runner's `get_command`) gets every group, in the order below.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.models import TyperInfo

# name -> (module in quartermaster.cli, its Typer), in the order `qm --help` lists them
GROUPS: dict[str, tuple[str, str]] = {
    "site": ("site_commands", "app"),
    "package": ("package_commands", "app"),
    "program": ("package_commands", "program_app"),
    "collection": ("collection_commands", "app"),
    "app": ("app_commands", "app"),
    "deploy": ("deploy_commands", "app"),
    "status": ("status_commands", "app"),
    "client": ("client_commands", "app"),
    "dp": ("dp_commands", "app"),
    "job": ("job_commands", "app"),
    "account": ("account_commands", "app"),
    "token": ("account_commands", "token_app"),
    "audit": ("audit_commands", "app"),
    "keys": ("trust_commands", "keys_app"),
    "release": ("trust_commands", "release_app"),
}
# These modules add their commands to a group above instead of making one: importing them is
# what joins `qm dp add|list|...`, `qm client list|approve|block|rekey`, `qm site settings` and
# `qm site rotate-key|retire-key|keys` (tests/client/test_cli.py checks the groups).
JOINED_GROUPS: dict[str, tuple[str, ...]] = {
    "dp": ("dp_admin_commands",),
    "client": ("client_admin_commands",),
    "site": ("site_settings_commands", "key_commands"),
}


def _module(name: str) -> Any:
    return importlib.import_module(f"quartermaster.cli.{name}")


class _LazyGroups(typer.Typer):
    """A Typer whose groups are imported on first need: all of them when the command tree is
    read as a whole, only the one named on the command line when `qm` is run."""

    _loaded = False

    @property  # type: ignore[override]
    def registered_groups(self) -> list[TyperInfo]:
        if not self._loaded:
            self.load(list(GROUPS))
        return self._groups

    @registered_groups.setter
    def registered_groups(self, value: list[TyperInfo]) -> None:
        self._groups = value

    def load(self, names: list[str], joined: bool = True) -> None:
        """Register the groups `names` (and, with `joined`, the commands others join to them);
        nothing is loaded on a later read."""
        self._loaded = True
        for name in names:
            module, attribute = GROUPS[name]
            self.add_typer(getattr(_module(module), attribute), name=name)
            if joined:
                for extra in JOINED_GROUPS.get(name, ()):
                    _module(extra)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._loaded:
            self._load_for(sys.argv[1:])
        return super().__call__(*args, **kwargs)

    def _load_for(self, argv: list[str]) -> None:
        """Only the group the command line names; its joined modules only if the command is
        not one of the group's own (so `qm client --help` still lists every command)."""
        if not argv or argv[0] not in GROUPS:
            self.load(list(GROUPS))
            return
        name = argv[0]
        module, attribute = GROUPS[name]
        own = {
            info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
            for info in getattr(_module(module), attribute).registered_commands
        }
        self.load([name], joined=len(argv) < 2 or argv[1] not in own)


app = _LazyGroups(
    name="qm",
    help="Quartermaster: publish packages, distribute them to DPs, deploy programs to clients.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
