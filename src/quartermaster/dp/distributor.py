"""Bring package versions into a DP store and keep them good; no knowledge of the site API.

A manifest is accepted only when a trusted site key signed it and it hashes to the package
hash the site named. Blobs come by hash from the given sources in order, through the one
download path (`core.blob_transfer.BlobFetcher`), and are verified before they are visible.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import IntegrityError, QMError
from quartermaster.core.manifest import Manifest
from quartermaster.core.signing import PublicKey, verify_envelope
from quartermaster.dp.store import (
    BlobFetchOutcome,
    BlobUnavailable,
    CancelCheck,
    Cancelled,
    DPStore,
)


class DistributionFailed(QMError):
    code = "distribution_failed"
    http_status = 502


@dataclass
class PullProgress:
    bytes_total: int  # bytes of the version's distinct blobs
    bytes_done: int  # of those, held now
    bytes_transferred: int = 0  # received over the network by this pull
    blobs_fetched: int = 0


NOWHERE = "\x00"  # a headers scope no URL starts with


class Distributor:
    """Pulls, checks and re-checks versions in one store; one per worker thread."""

    def __init__(
        self,
        store: DPStore,
        trusted_keys: Mapping[str, PublicKey],
        log: ComponentLog,
        credential: str = "",
        cancel: CancelCheck | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.trusted_keys = dict(trusted_keys)
        self.log = log
        self.cancel = cancel or (lambda: False)
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        # The credential goes to the site's library only (set per pull), never to a peer DP:
        # their content is public and verified by hash like any other source's.
        self.fetcher = BlobFetcher(
            timeout=timeout, headers=headers, ssl_context=ssl_context, headers_scope=NOWHERE
        )

    def close(self) -> None:
        self.fetcher.close()

    def accept_manifest(self, package_hash: str, envelope: bytes) -> Manifest:
        """Verify a signed manifest envelope for `package_hash` and store it."""
        try:
            parsed = json.loads(envelope)
        except ValueError:
            raise IntegrityError(
                f"manifest {package_hash} is not JSON",
                "the site sent something else; it is fetched again",
            ) from None
        manifest = Manifest.from_dict(verify_envelope(parsed, self.trusted_keys))
        actual = manifest.package_hash()
        if actual != package_hash:
            raise IntegrityError(
                f"the manifest sent for {package_hash} is the one of {actual}",
                "refusing a manifest of another version (mix-and-match)",
            )
        self.store.write_manifest(package_hash, envelope)
        return manifest

    def pull(
        self,
        manifest: Manifest,
        sources: Sequence[str],
        on_progress: Callable[[PullProgress], None] | None = None,
        library: str = "",
    ) -> PullProgress:
        """Fetch every blob of `manifest` the store lacks; raise DistributionFailed if one fails.
        The DP's credential is sent only to URLs below `library` (the site's library)."""
        self.fetcher.headers_scope = library or NOWHERE
        missing = self.store.missing_blobs(manifest)
        total = sum(manifest.blobs().values())
        progress = PullProgress(total, total - sum(missing.values()))
        self._check_space(sum(missing.values()))

        def tick(n: int) -> None:
            progress.bytes_done += n
            progress.bytes_transferred += n
            if self.cancel():
                raise Cancelled()
            if on_progress is not None:
                on_progress(progress)

        try:
            for sha256, size in sorted(missing.items()):
                self._pull_blob(sha256, size, sources, progress, tick)
        except Cancelled:
            self.fetcher.close()  # the connection stopped mid-response; the .part stays
            raise
        return progress

    def _pull_blob(
        self,
        sha256: str,
        size: int,
        sources: Sequence[str],
        progress: PullProgress,
        tick: Callable[[int], None],
    ) -> None:
        if self.cancel():
            raise Cancelled()
        done_before = progress.bytes_done
        try:
            outcome = self.store.fetch_blob(self.fetcher, sources, sha256, size, tick)
        except BlobUnavailable as exc:
            progress.bytes_done = done_before
            self.log.warning(f"blob {sha256} unavailable: {exc.message}")
            raise DistributionFailed(exc.message, exc.hint) from None
        progress.bytes_done = done_before + size
        progress.blobs_fetched += 1
        self._log_outcome(outcome, size)

    def _log_outcome(self, outcome: BlobFetchOutcome, size: int) -> None:
        for failure in outcome.failures:
            self.log.write(f"blob {outcome.sha256}: source skipped: {failure}")
        if not outcome.source:
            return
        resumed = f", resumed at byte {outcome.resumed_from}" if outcome.resumed_from else ""
        self.log.write(
            f"blob {outcome.sha256} stored ({size} bytes, "
            f"{outcome.bytes_transferred} transferred from {outcome.source}{resumed})"
        )

    def _check_space(self, needed: int) -> None:
        free = self.store.free_bytes()
        if needed > free:
            raise DistributionFailed(
                f"not enough free disk space: {needed} bytes needed, "
                f"{free} free in {self.store.root}",
                "free disk space on the DP host or move its home",
            )

    def validate(self, package_hashes: Iterable[str]) -> list[str]:
        """Re-hash the versions' blobs; the bad ones are removed and returned for re-fetching."""
        bad = self.store.validate(package_hashes, self.cancel)
        for sha256 in bad:
            self.log.warning(f"blob {sha256} failed validation: removed, to be fetched again")
        return bad
