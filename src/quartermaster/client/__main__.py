"""`python -m quartermaster.client run --home DIR`: the agent service, without the `qm` CLI.

The service unit starts this instead of `qm client run`: it loads only the agent (no command
groups of the site, DP or admin CLI, no terminal formatting), which keeps the resident size
of an idle agent down. It behaves as `qm client run --home DIR` without --once: a run every
poll interval, stopped by SIGTERM after the current step.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from quartermaster.client.home import ClientHome
from quartermaster.core.errors import QMError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quartermaster.client")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent service until SIGTERM")
    run.add_argument("--home", required=True, type=Path, help="the client's home folder")
    commands.add_parser("check", help="load every agent module and print the version")
    upgrade = commands.add_parser("upgrade", help="install a new agent build (client/upgrade.py)")
    upgrade.add_argument("wheel", type=Path, help="a quartermaster-client wheel")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check()
    if args.command == "upgrade":
        return _upgrade(args.wheel)
    from quartermaster.client import upgrade as upgrades
    from quartermaster.client.service import agent_cycle, install_stop_handlers, serve

    home = ClientHome(args.home)
    try:
        home.load_config()
    except QMError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    stop = threading.Event()
    install_stop_handlers(stop)

    def cycle() -> float:
        delay = agent_cycle(home, stop)
        if upgrades.restart_requested(home.root):  # an upgrade program installed a new build
            stop.set()
        return delay

    serve(cycle, stop, home.log("service"))
    if upgrades.restart_requested(home.root):
        home.log("service").write("restarting to run the upgraded agent")
        upgrades.restart(home.root)
    return 0


def _check() -> int:
    """Import every module the agent runs; print the version (a new build's self-test)."""
    import quartermaster
    from quartermaster.client import agent, service, upgrade  # noqa: F401

    print(f"quartermaster-client {quartermaster.__version__}")
    return 0


def _upgrade(wheel: Path) -> int:
    import os

    from quartermaster.client.upgrade import upgrade

    home = os.environ.get("QM_CLIENT_HOME")
    try:
        before, after = upgrade(wheel.absolute(), Path(home) if home else None)
    except QMError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(exc.hint, file=sys.stderr)
        return 1
    print(f"agent upgraded from {before} to {after}; it restarts after this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
