"""Bring package versions into a DP store and keep them good; no knowledge of the site API.

A manifest is accepted only when a trusted site key signed it and it hashes to the package
hash the site named. Blobs come by hash from the given sources in order, through the one
download path (`core.blob_transfer.BlobFetcher`), and are verified before they are visible;
small ones first in pack requests to the first source (`core.pack_transfer`). A DP that
shares a host with the site's library folder (the embedded DP) is given that folder and
copies from it first, verifying each copy the same way (`dp.local_fill`).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import IntegrityError, QMError
from quartermaster.core.manifest import Manifest
from quartermaster.core.pack_transfer import BATCH_BYTES, MAX_BLOBS, batches, fetch_pack
from quartermaster.core.signing import PublicKey, verify_envelope
from quartermaster.dp.local_fill import LocalLibrary
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
# A DP takes blobs up to this size in packs (a client: up to core.pack_transfer.BLOB_LIMIT).
# Files above the chunking threshold (4 MiB) are stored as chunks, so in practice every blob
# of a version comes in packs, made durable by a syncfs pair per pack instead of an fsync
# each; a pack holds at most IN_FLIGHT (32) received blobs in memory, 128 MiB at worst.
PACK_BLOB_LIMIT = 4 * 1024 * 1024 + 1
# Pack requests in flight to the source. One: syncfs makes the whole file system durable,
# so a second stream's syncfs waits for the first one's writes and the other way round
# (measured: packs then finished in pairs, and the fill took longer, not shorter).
PACK_STREAMS = 1


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
        local_library: Path | None = None,
    ) -> None:
        self.store = store
        # The library folder on this host, if any (the embedded DP's site library): copied
        # from first, each copy verified; the sources serve what it lacks or holds bad.
        self.local_library = LocalLibrary(local_library) if local_library is not None else None
        self.trusted_keys = dict(trusted_keys)
        self.log = log
        self.cancel = cancel or (lambda: False)
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        # The credential goes to the site's library only (set per pull), never to a peer DP:
        # their content is public and verified by hash like any other source's.
        self.fetcher = BlobFetcher(
            timeout=timeout, headers=headers, ssl_context=ssl_context, headers_scope=NOWHERE
        )
        self._more_fetchers: list[BlobFetcher] = []  # the other pack streams' connections

    def close(self) -> None:
        self.fetcher.close()
        for fetcher in self._more_fetchers:
            fetcher.close()

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
        missing: dict[str, int] | None = None,
    ) -> PullProgress:
        """Fetch every blob of `manifest` the store lacks; raise DistributionFailed if one fails.
        The DP's credential is sent only to URLs below `library` (the site's library).
        `missing`: what the caller found missing just before (a stat per blob spared)."""
        self.fetcher.headers_scope = library or NOWHERE
        if missing is None:
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
            wanted = dict(sorted(missing.items()))
            copied = self._pull_local(wanted, progress, tick)
            wanted = {sha: size for sha, size in wanted.items() if sha not in copied}
            packed = self._pull_packs(wanted, sources, progress, tick)
            for sha256, size in wanted.items():
                if sha256 not in packed:
                    self._pull_blob(sha256, size, sources, progress, tick)
        except Cancelled:
            self.close()  # the connections stopped mid-response; the .part stays
            raise
        return progress

    def _pull_local(
        self, wanted: dict[str, int], progress: PullProgress, tick: Callable[[int], None]
    ) -> set[str]:
        """Blobs copied from the local library folder, verified and durable; returns those
        stored. A blob it lacks or holds bad, or a library that cannot be read, is left to
        the sources."""
        if self.local_library is None or not wanted or not self.store.takes_packs:
            return set()
        library = self.local_library
        try:
            result = library.fill(wanted, self.store.blob_path, lambda _sha, size: tick(size))
        except OSError as exc:
            self.log.warning(
                f"the local library {library.root} could not be copied from: "
                f"{exc.__class__.__name__}: {exc}; the sources serve the rest"
            )
            return {sha for sha in wanted if self.store.has_blob(sha)}
        progress.blobs_fetched += len(result.stored)
        for line in result.log_lines(library.root, len(wanted)):
            (self.log.warning if line.startswith("blob ") else self.log.write)(line)
        return set(result.stored)

    def _pull_packs(
        self,
        missing: dict[str, int],
        sources: Sequence[str],
        progress: PullProgress,
        tick: Callable[[int], None],
    ) -> set[str]:
        """Blobs up to PACK_BLOB_LIMIT from the first source in pack requests on
        PACK_STREAMS connections, each pack durable with two syncfs; returns those stored.
        What a pack did not bring (no pack route, not held there, a cut or bad
        answer) is left to the blob-by-blob pull and its fallback; after a failure no
        further pack is asked of that source."""
        stored: set[str] = set()
        if len(missing) < 2 or not sources or not self.store.takes_packs:
            return stored
        queue = iter(list(batches(missing, PACK_BLOB_LIMIT, MAX_BLOBS, BATCH_BYTES)))
        lock = threading.Lock()
        stop = threading.Event()

        def locked_tick(n: int) -> None:
            with lock:
                tick(n)

        def stream(fetcher: BlobFetcher) -> None:
            while not stop.is_set():
                with lock:
                    batch = next(queue, None)
                if batch is None:
                    return
                if self.cancel():
                    raise Cancelled()
                result = fetch_pack(
                    fetcher,
                    sources[0],
                    batch,
                    self.store.blob_path,
                    durable=True,
                    on_blob=lambda _sha, size: locked_tick(size),
                )
                with lock:
                    stored.update(result.stored)
                    progress.blobs_fetched += len(result.stored)
                    for line in result.log_lines(sources[0], len(batch)):
                        self.log.write(line)
                if result.failure is not None:
                    stop.set()

        fetchers = [self.fetcher, *self._extra_fetchers(PACK_STREAMS - 1)]
        with ThreadPoolExecutor(len(fetchers), thread_name_prefix="pack-stream") as pool:
            futures = [pool.submit(stream, fetcher) for fetcher in fetchers]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                stop.set()
                raise error
        return stored

    def _extra_fetchers(self, count: int) -> list[BlobFetcher]:
        """More connections like the main one (same headers and scope), kept between pulls."""
        while len(self._more_fetchers) < count:
            self._more_fetchers.append(
                BlobFetcher(
                    timeout=self.fetcher.timeout,
                    headers=self.fetcher.headers,
                    ssl_context=self.fetcher.ssl_context,
                    headers_scope=NOWHERE,
                )
            )
        for fetcher in self._more_fetchers:
            fetcher.headers_scope = self.fetcher.headers_scope
        return self._more_fetchers[:count]

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
