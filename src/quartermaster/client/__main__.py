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
    args = parser.parse_args(argv)
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
    serve(lambda: agent_cycle(home, stop), stop, home.log("service"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
