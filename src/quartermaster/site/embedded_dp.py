"""The site's own distribution point: the ordinary DP agent, run inside the site process.

It enrolls with the token `qm site init` left in its home (once), then runs as any DP does.
The site wakes it whenever assignments change, so publishing reaches it without waiting for
a poll.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from quartermaster.dp.agent import DPAgent, enroll
from quartermaster.dp.home import DPHome
from quartermaster.dp.site_link import SiteUnreachable
from quartermaster.site.context import SiteContext
from quartermaster.site.home import public_url

ENROLLMENT_TOKEN = "enrollment.token"
POLL_INTERVAL = 30.0


class EmbeddedDP:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        self.home = DPHome(ctx.home.dp_home)
        self.agent: DPAgent | None = None
        ctx.on_distribution_change(self.wake)

    @property
    def store_root(self) -> Path:
        return self.home.root / "store"

    async def run(self) -> None:
        self.home.ensure()
        identity = self.home.load_identity()
        delay = 0.2
        while identity is None:  # the API starts in this same process; wait for it
            token = (self.home.root / ENROLLMENT_TOKEN).read_text().strip()
            try:
                identity = await asyncio.to_thread(enroll, self.home, public_url(self.ctx.config),
                                                   token, self.ctx.content_url)
            except SiteUnreachable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        (self.home.root / ENROLLMENT_TOKEN).unlink(missing_ok=True)
        self.agent = DPAgent(self.home, identity, poll_interval=POLL_INTERVAL)
        await self.agent.run_async()

    def wake(self) -> None:
        if self.agent is not None:
            self.agent.wake()
