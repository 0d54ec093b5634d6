"""The agent as a service: a run every poll interval (with jitter), stopped by SIGTERM/SIGINT.

A stop request is honoured between runs and between deployments; a program that is already
running is allowed to finish, since killing an installer halfway is worse than waiting.
A second signal stops the process at once.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import traceback
from collections.abc import Callable
from datetime import datetime

from quartermaster.client.agent import Agent
from quartermaster.client.home import ClientHome
from quartermaster.client.peer_server import PeerCache
from quartermaster.client.site_link import SiteLink
from quartermaster.client.timestamps import Clock, utcnow
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import QMError

MAX_JITTER = 300.0  # seconds
log_ = logging.getLogger("quartermaster.client.service")


def serve(
    cycle: Callable[[], float], stop: threading.Event, log: ComponentLog, crash_delay: float = 60.0
) -> None:
    """Call `cycle` until `stop` is set; `cycle` returns the seconds to wait before the next."""
    log.write("service started")
    log_.info("client agent service started")
    while not stop.is_set():
        try:
            delay = cycle()
        except Exception:  # the service outlives a bug in one run; the log keeps the trace
            log.error(f"agent run crashed:\n{traceback.format_exc()}")
            log_.exception("agent run crashed; next run in %.0f seconds", crash_delay)
            delay = crash_delay
        stop.wait(max(delay, 0.0))
    log.write("service stopped")
    log_.info("client agent service stopped")


def agent_cycle(
    home: ClientHome,
    stop: threading.Event,
    clock: Clock = utcnow,
    rng: random.Random | None = None,
    peers: PeerCache | None = None,
) -> float:
    """One agent run; returns how long to wait: the poll interval plus jitter, or less when a
    retry or deadline falls due sooner or the site asked for an earlier poll."""
    log = home.log("policyagent")
    config = home.load_config()
    wakeup: datetime | None = None
    poll_after: int | None = None
    try:
        with SiteLink(
            config.site_url, home.read_secret(), ssl_context=home.ssl_context(config)
        ) as site:
            agent = Agent(home, site, clock=clock, should_stop=stop.is_set, peers=peers)
            summary = agent.run_once()
            wakeup, config, poll_after = summary.next_wakeup, agent.config, summary.poll_after
    except QMError as exc:
        log.warning(f"agent run failed: {exc}")
        log_.warning("agent run failed: %s", exc, extra={"hint": exc.hint})
    interval = config.poll_interval if poll_after is None else min(config.poll_interval, poll_after)
    jitter = (rng or random.Random()).uniform(0.0, min(interval * 0.1, MAX_JITTER))
    delay = interval + jitter
    if wakeup is not None:
        delay = min(delay, max((wakeup - clock()).total_seconds(), 0.0) + 1.0)
    log.write(f"next run in {delay:.0f} seconds")
    log_.info("agent run done; next run in %.0f seconds", delay)
    return delay


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`; the handler then steps aside so a second signal kills."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
