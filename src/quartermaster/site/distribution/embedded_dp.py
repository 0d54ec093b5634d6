"""The site's own distribution point: the ordinary DP agent, run inside the site process.

It enrolls with the token `qm site init` left in its home (once), then runs as any DP does.
The site wakes it whenever assignments change, so publishing reaches it without waiting for
a poll. When the library is a folder (not a bucket) the DP copies blobs from it directly,
by reflink where the file system can, each copy verified by its SHA-256 before it is
visible (dp/local_fill.py), instead of fetching them again over HTTP from `/library`.
"""

from __future__ import annotations

import asyncio
import fcntl
from dataclasses import replace
from pathlib import Path

from sqlalchemy import update

from quartermaster.core.backoff import Backoff, retry_async
from quartermaster.dp.agent import DPAgent, enroll
from quartermaster.dp.home import DPHome, DPIdentity
from quartermaster.dp.metrics import DPMetrics
from quartermaster.dp.site_link import SiteUnreachable
from quartermaster.site.content_library import FolderStorage
from quartermaster.site.context import SiteContext
from quartermaster.site.home import public_url
from quartermaster.site.models import DistributionPoint

ENROLLMENT_TOKEN = "enrollment.token"
POLL_INTERVAL = 30.0
ENROLL_BACKOFF = Backoff(first=0.2, cap=5.0)  # the API is starting in this same process
LOCK_FILE = "embedded-dp.lock"


class EmbeddedDP:
    def __init__(self, ctx: SiteContext, metrics: DPMetrics | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.home = DPHome(ctx.home.dp_home)
        self.agent: DPAgent | None = None
        ctx.on_distribution_change(self.wake)

    def claim(self) -> bool:
        """Take this home's embedded DP for this process, for as long as it runs. False when
        another site process serving the same home already runs it (docs/operations.md)."""
        self.home.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.home.root / LOCK_FILE, "a")  # noqa: SIM115 (held while serving)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._claim = handle
        return True

    @property
    def store_root(self) -> Path:
        return self.home.root / "store"

    async def run(self) -> None:
        self.home.ensure()
        identity = self.home.load_identity()
        if identity is None:
            identity = await retry_async(
                self._enroll, retry_on=(SiteUnreachable,), backoff=ENROLL_BACKOFF
            )
        (self.home.root / ENROLLMENT_TOKEN).unlink(missing_ok=True)
        identity = self._follow_site(identity)
        self.agent = DPAgent(
            self.home,
            identity,
            poll_interval=POLL_INTERVAL,
            metrics=self.metrics,
            local_library=self.library_folder,
        )
        self.ctx.embedded_dp_state = "running"
        await asyncio.to_thread(self._clear_problem)
        await self.agent.run_async()

    def _clear_problem(self) -> None:
        """It runs again: the problem an earlier start recorded is over."""
        with self.ctx.db.session() as session:
            session.execute(
                update(DistributionPoint)
                .where(DistributionPoint.embedded.is_(True), DistributionPoint.problem.is_not(None))
                .values(problem=None)
            )

    @property
    def library_folder(self) -> Path | None:
        """The library's folder when it is one on this host; None for a bucket, which the
        DP reads through the site's `/library` route as any DP does."""
        storage = self.ctx.library.storage
        return storage.root if isinstance(storage, FolderStorage) else None

    async def _enroll(self) -> DPIdentity:
        token = (self.home.root / ENROLLMENT_TOKEN).read_text().strip()
        return await asyncio.to_thread(
            enroll, self.home, public_url(self.ctx.config), token, self.ctx.content_url, self._ca()
        )

    def _ca(self) -> Path | None:
        """With TLS, the embedded DP trusts the site's own certificate (partial chain)."""
        return self.ctx.tls.cert if self.ctx.tls is not None else None

    def _follow_site(self, identity: DPIdentity) -> DPIdentity:
        """The site's URL and certificate may change between starts (e.g. TLS turned on)."""
        ca = self._ca()
        changed = self.home.pin_ca(
            replace(identity, site_url=public_url(self.ctx.config)),
            ca.read_bytes() if ca is not None else None,
        )
        if changed != identity:
            self.home.save_identity(changed)
        return changed

    def wake(self) -> None:
        if self.agent is not None:
            self.agent.wake()
