"""Everything a site service needs, built once per process from the site home."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quartermaster.core.signing import PublicKey
from quartermaster.core.tls import ServerTLS
from quartermaster.site.content_library import ContentLibrary
from quartermaster.site.db import Database
from quartermaster.site.home import SiteConfig, SiteHome, content_url
from quartermaster.site.identity.keys import SiteKeys
from quartermaster.site.identity.root_store import RootStore
from quartermaster.site.library_bucket import open_library
from quartermaster.site.rate_limit import AddressBudget

if TYPE_CHECKING:
    from quartermaster.site.metrics import SiteMetrics


@dataclass
class SiteContext:
    home: SiteHome
    config: SiteConfig
    db: Database
    key: SiteKeys  # signs with every active key (see site/identity/keys.py)
    library: ContentLibrary
    tls: ServerTLS | None = None  # set by `qm site serve --tls-cert/--tls-key`
    # This process's embedded DP: off|elsewhere|starting|running|failed|stopped (/readyz).
    embedded_dp_state: str = "off"
    embedded_dp_problem: str = ""
    _listeners: list[Callable[[], None]] = field(default_factory=list)
    _metrics: SiteMetrics | None = None
    _jobs: Any = None  # this process's job runner: site/jobs/runner.py, runner_of(ctx)
    _roots: RootStore | None = None
    _registrations: AddressBudget | None = None

    @property
    def registrations(self) -> AddressBudget:
        """How many registrations each address may still make (config.json's limit)."""
        if self._registrations is None:
            self._registrations = AddressBudget(
                self.config.registrations_per_minute, "registrations"
            )
        return self._registrations

    @classmethod
    def open(cls, root: Path) -> SiteContext:
        home = SiteHome(root)
        config = home.load_config()
        return cls(
            home,
            config,
            Database(config.database_url),
            SiteKeys(home.keys),
            open_library(home.library, config.library_url, config.chunk_threshold),
        )

    @property
    def site_code(self) -> str:
        return self.config.site_code

    @property
    def content_url(self) -> str:
        return content_url(self.config)

    @property
    def metrics(self) -> SiteMetrics:
        """This process's metrics (`/metrics`), made at first use."""
        if self._metrics is None:
            from quartermaster.site.metrics import SiteMetrics

            self._metrics = SiteMetrics(self)
        return self._metrics

    @property
    def roots(self) -> RootStore:
        """The root metadata versions (offline keys' statement of the online keys, approvers)."""
        if self._roots is None:
            self._roots = RootStore(self.home.keys)
        return self._roots

    def trusted_keys(self) -> list[PublicKey]:
        """The active signing keys: primary first, then keys still in a rotation's overlap."""
        return self.key.public_keys()

    def on_distribution_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def distribution_changed(self) -> None:
        """Call after a committed change to DP assignments (the embedded DP wakes up)."""
        for listener in self._listeners:
            listener()

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
        self.db.dispose()
