"""The site's own distribution point: the ordinary DP agent, run inside the site process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from quartermaster.site.context import SiteContext


class EmbeddedDP:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        self._stop = asyncio.Event()

    @property
    def store_root(self) -> Path:
        return self.ctx.home.dp_home / "store"

    async def run(self) -> None:
        self.store_root.mkdir(parents=True, exist_ok=True)
        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
