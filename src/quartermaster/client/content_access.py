"""Content access: get every blob of a manifest into the cache from the DPs, verified.

Blobs already in the cache are not fetched again. For each missing blob the DPs are tried
in the order the site gave; a DP that served bad bytes (10075) or failed (10050) is not
asked again in this run. All bytes pass through core.blob_transfer.BlobFetcher, which
hashes while streaming, so nothing unverified ever lands in the cache.

A chunked file is held whole in the cache (client/chunk_assembly.py): only the chunks that
no file in the cache holds are fetched, each written at its place in the file as it arrives.

Small blobs are first asked for in pack requests (core/pack_transfer.py) to the first DP:
one answer carries thousands of files, each still verified by its own hash. What a pack
did not bring (the DP has no pack route, as a stock nginx; it lacks the blob; the answer
was cut or bad) is then fetched blob by blob with the usual fallback and reporting, so a
bad byte in a pack is reported (10075) by the GET that follows, from the DP that sent it.

Blobs are written to the cache without fsync (`durable=False`): on a disk that writes back
slower than the network delivers, an fsync per blob doubled the time to fetch a package.
A crash may therefore leave a cached blob torn or empty. That is safe because nothing
trusts the cache: `work_layout` hashes every blob that this `obtain` did not just download
(`DownloadReport.fetched`) before it lays it out, and a damaged one is removed and fetched
again before the program starts (deployment_run.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

from quartermaster.client.cache import PARTIAL, ContentCache
from quartermaster.client.chunk_assembly import Assembly
from quartermaster.client.site_link import Location
from quartermaster.client.status_spool import DeploymentReporter
from quartermaster.core.bandwidth import BandwidthLimit
from quartermaster.core.blob_transfer import (
    BlobFetcher,
    FetchResult,
    NoSpace,
    TransferError,
    TransferStopped,
)
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import HashMismatch, IntegrityError, QMError
from quartermaster.core.manifest import Manifest
from quartermaster.core.pack_transfer import BLOB_LIMIT, batches, fetch_pack
from quartermaster.core.store_layout import blob_url


class ContentUnavailable(QMError):
    """No DP gave good bytes for a blob; 10051 has been reported."""

    code = "content_unavailable"


class DownloadPaused(TransferStopped):
    """The bandwidth schedule says 0 now: the transfer stops, its .part is kept."""

    code = "download_paused"


@dataclass
class DownloadReport:
    files: int
    bytes_downloaded: int = 0
    dps: list[str] = field(default_factory=list)
    fetched: set[str] = field(default_factory=set)  # blobs downloaded and verified just now
    # bytes by the kind of location they came from: peer, boundary, fallback
    by_kind: dict[str, int] = field(default_factory=dict)

    def sources(self) -> dict[str, int]:
        """The split that 10036 carries (Configuration Manager's client data sources)."""
        return {f"bytes_{k}": self.by_kind.get(k, 0) for k in ("peer", "boundary", "fallback")}


def held_blobs(manifest: Manifest) -> list[str]:
    """What the cache holds for a version: each file as one blob, a chunked one too."""
    return list(dict.fromkeys(entry.sha256 for entry in manifest.files))


class ContentAccess:
    def __init__(
        self,
        cache: ContentCache,
        fetcher: BlobFetcher,
        log: ComponentLog,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cache = cache
        self.fetcher = fetcher
        self.log = log
        self.should_stop = should_stop  # a stop request ends a transfer between two chunks
        self.limit = BandwidthLimit()  # the policy's; set by the agent before each run
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._paced_bytes = 0
        self._paced_since = 0.0
        # told of every blob verified into the cache, and of every version held whole
        # (client/peer_server.py serves them to the boundary)
        self.on_verified: Callable[[str], None] = lambda _sha: None
        self.on_held: Callable[[str, list[str]], None] = lambda _hash, _blobs: None

    def missing(self, manifest: Manifest) -> dict[str, int]:
        """What is still to fetch: whole files not cached, and chunks of chunked files that
        are neither in their file's assembly nor anywhere in the cache."""
        return self._missing(manifest, Assembly(self.cache, manifest))

    def _missing(self, manifest: Manifest, assembly: Assembly) -> dict[str, int]:
        whole = {
            e.sha256: e.size
            for e in manifest.files
            if not e.chunks and not self.cache.has(e.sha256)
        }
        return {**whole, **assembly.needed()}

    def obtain(
        self, manifest: Manifest, locate: Callable[[], list[Location]], reporter: DeploymentReporter
    ) -> DownloadReport:
        """Make every file of `manifest` present in the cache (a chunked file whole, written
        from its chunks); `locate` is asked only if something is missing. HashMismatch if a
        chunk read from the cache was damaged (it is removed: obtain again)."""
        version = manifest.source_version
        report = DownloadReport(files=len(manifest.files))
        assembly = Assembly(self.cache, manifest)
        missing = self._missing(manifest, assembly)
        held = held_blobs(manifest)
        if missing or assembly.files:
            to_fetch = sum(missing.values()) - self._partial_bytes(missing)
            self.cache.make_room(
                to_fetch + assembly.bytes_to_write(), pinned=set(held) | assembly.holders()
            )
            try:
                assembly.open()
                if missing:
                    self._download(
                        manifest, missing, to_fetch, locate(), reporter, report, assembly
                    )
                made = assembly.finish()
            except DownloadPaused:
                assembly.stop()
                total = sum(missing.values())
                still = self.missing(manifest)
                kept = self._partial_bytes(still) + total - sum(still.values())
                resume = self.limit.next_change(self.clock())
                when = resume.strftime("%Y-%m-%dT%H:%MZ") if resume else "a schedule change"
                self.log.write(f"package {manifest.package_id}: download paused until {when}")
                reporter.emit(10037, version, kept, total, when)
                raise
            except BaseException:
                assembly.stop()
                raise
            report.fetched.update(made)
            for sha in made:
                self.on_verified(sha)
        for sha in held:
            if sha not in report.fetched:  # a blob written just now was used just now
                self.cache.touch(sha)
        self.on_held(reporter.deployment.package_hash, held)
        sources = ", ".join(report.dps) or "the local cache"
        self.log.write(
            f"package {manifest.package_id} version {version}: {report.files} files "
            f"verified, {report.bytes_downloaded} bytes downloaded from {sources}"
        )
        reporter.emit(
            10036,
            version,
            report.files,
            report.bytes_downloaded,
            sources,
            properties=report.sources(),
        )
        return report

    def _download(
        self,
        manifest: Manifest,
        missing: dict[str, int],
        to_fetch: int,
        locations: list[Location],
        reporter: DeploymentReporter,
        report: DownloadReport,
        assembly: Assembly,
    ) -> None:
        version = manifest.source_version
        if not locations:
            self._give_up(reporter, version, "no distribution point holds this version")
        self.log.write(
            f"package {manifest.package_id} version {version}: fetching "
            f"{len(missing)} blobs, {to_fetch} bytes; DPs in order: "
            f"{', '.join(loc.dp for loc in locations)}"
        )
        reporter.emit(10035, version, to_fetch, locations[0].dp, dp=locations[0].dp)
        paths = manifest.blob_owners()  # a chunk is named with its file and offset
        kinds = {location.dp: location.kind for location in locations}
        skipped: set[str] = set()
        self._fetch_packs(missing, locations[0], report, assembly)
        for sha, size in missing.items():
            if sha in report.fetched:
                continue
            self._pace(0)
            outcome = self._fetch_blob(sha, size, paths[sha], locations, skipped, reporter)
            if isinstance(outcome, str):
                self._give_up(reporter, version, outcome)
            dp, result = outcome
            report.bytes_downloaded += result.bytes_transferred
            report.fetched.add(sha)
            kind = kinds.get(dp) or "boundary"
            report.by_kind[kind] = report.by_kind.get(kind, 0) + result.bytes_transferred
            if dp not in report.dps:
                report.dps.append(dp)

    def _fetch_packs(
        self,
        missing: dict[str, int],
        location: Location,
        report: DownloadReport,
        assembly: Assembly,
    ) -> None:
        """Small missing blobs from the first DP in pack requests (a chunk written straight
        into its file); whatever they do not bring is left to the blob-by-blob loop (and its
        fallback and reporting)."""
        if len(missing) < 2:
            return
        self._paced_bytes, self._paced_since = 0, time.monotonic()
        # a chunk goes in a pack whatever its size (at most 16 MiB): it is written straight
        # into its file, and a GET would write it to a file of its own first
        packed = {s: n for s, n in missing.items() if n < BLOB_LIMIT or assembly.wants(s)}
        for batch in batches(packed, blob_limit=None):
            result = fetch_pack(
                self.fetcher,
                location.url,
                batch,
                self.cache.blob_path,
                durable=False,
                on_blob=lambda _sha, size: self._pace(size),
                place=assembly.place,
            )
            report.fetched.update(result.stored)
            report.bytes_downloaded += result.bytes_transferred
            kind = location.kind or "boundary"
            report.by_kind[kind] = report.by_kind.get(kind, 0) + result.bytes_transferred
            if result.stored and location.dp not in report.dps:
                report.dps.append(location.dp)
            for line in result.log_lines(location.dp, len(batch)):
                self.log.write(line)
            if result.failure is not None:
                return

    def _fetch_blob(
        self,
        sha: str,
        size: int,
        path: str,
        locations: list[Location],
        skipped: set[str],
        reporter: DeploymentReporter,
    ) -> tuple[str, FetchResult] | str:
        """(DP, result) from the first DP that gives good bytes, or why none did."""
        failure = "every distribution point was already skipped in this run"
        for location in locations:
            if location.dp in skipped:
                continue
            try:
                return location.dp, self._fetch_from(location, sha, size, path)
            except NoSpace as exc:
                self.cache.remove(sha)  # the partial file: it filled the disk
                self.log.write(f"blob {sha} ({path}): {exc.message}; partial file removed")
                reason = f"the package is larger than the free cache space: {exc.message}"
                reporter.emit(10050, location.dp, reason, dp=location.dp)
                return reason
            except HashMismatch as exc:
                reporter.emit(
                    10075,
                    location.dp,
                    path,
                    sha,
                    exc.expected,
                    exc.actual,
                    dp=location.dp,
                    properties={"dp": location.dp},
                )
                failure = f"last tried {location.dp}: hash mismatch on {path}"
            except (TransferError, IntegrityError) as exc:
                self.log.warning(f"blob {sha} ({path}) from {location.dp}: {exc.message}")
                reporter.emit(10050, location.dp, exc.message, dp=location.dp)
                failure = f"last tried {location.dp}: {exc.message}"
            skipped.add(location.dp)
        return failure

    def _fetch_from(self, location: Location, sha: str, size: int, path: str) -> FetchResult:
        url = blob_url(location.url, sha)
        dest = self.cache.blob_path(sha)
        resuming = dest.with_name(dest.name + PARTIAL).exists()
        self._paced_bytes, self._paced_since = 0, time.monotonic()
        try:
            result = self.fetcher.fetch(url, dest, sha, size, self._pace, durable=False)
        except HashMismatch as exc:
            self.log.write(
                f"blob {sha} ({path}) from {location.dp}: hash mismatch, got "
                f"{exc.actual}; bytes discarded"
            )
            if not resuming:
                raise
            # The earlier part may have come from another DP: judge this DP on its own bytes.
            self.log.write(f"blob {sha}: the resumed transfer failed; fetching it whole")
            result = self.fetcher.fetch(url, dest, sha, size, durable=False)
        self.on_verified(sha)
        self.log.write(
            f"blob {sha} ({path}) from {location.dp} ({url}): "
            f"{result.bytes_transferred} bytes, resumed from {result.resumed_from}, "
            "SHA-256 verified"
        )
        return result

    def _pace(self, received: int) -> None:
        """Between two chunks: stop if asked, pause if the schedule says 0, else sleep long
        enough to keep to the rate now in force (re-read at every chunk)."""
        self._stop_if_asked(received)
        rate = self.limit.rate_at(self.clock())
        if rate == 0:
            raise DownloadPaused(
                "the bandwidth schedule allows no download now",
                "the download resumes from the bytes kept when the schedule allows it",
            )
        self._paced_bytes += received
        if rate is None:
            self._paced_bytes, self._paced_since = 0, time.monotonic()
            return
        ahead = self._paced_bytes / rate - (time.monotonic() - self._paced_since)
        if ahead > 0:
            time.sleep(ahead)

    def _stop_if_asked(self, _received: int) -> None:
        if self.should_stop():
            raise TransferStopped(
                "the download was stopped because the agent is stopping",
                "it resumes from where it stopped at the agent's next run",
            )

    def _partial_bytes(self, missing: dict[str, int]) -> int:
        total = 0
        for sha in missing:
            partial = self.cache.blob_path(sha)
            partial = partial.with_name(partial.name + PARTIAL)
            if partial.is_file():
                total += partial.stat().st_size
        return total

    def _give_up(self, reporter: DeploymentReporter, version: int, reason: str) -> NoReturn:
        self.log.error(f"content of version {version} unavailable: {reason}")
        reporter.emit(10051, version, reason)
        raise ContentUnavailable(
            f"content of version {version} could not be obtained: {reason}",
            "the client tries again at its next run",
        )
