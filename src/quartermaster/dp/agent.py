"""The DP agent: keep one store in line with what the site assigns, and say how it went.

The same agent runs in a standalone DP (`qm dp serve`) and inside the site process (the
embedded DP). It is blocking code for one worker thread, because the data path
(`BlobFetcher`) is; `run_async` wraps it for an asyncio loop and `start_thread` for plain
threads. Every cycle reconciles: the site's view of each version (its `state`) is compared
with the store, and a report is sent only where they differ or something happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from quartermaster.core.backoff import Backoff, FailureStreak, retry_async
from quartermaster.core.errors import Forbidden, QMError, SignatureError, Unauthorized
from quartermaster.core.manifest import Manifest
from quartermaster.core.signing import accept_key_list
from quartermaster.core.tls import pinned_context, read_ca_file
from quartermaster.dp.distributor import Distributor, PullProgress
from quartermaster.dp.home import DPHome, DPIdentity
from quartermaster.dp.metrics import DPMetrics
from quartermaster.dp.site_link import (
    ADVICE,
    Assignment,
    AssignmentList,
    ContentReport,
    Report,
    SiteError,
    SiteLink,
    SiteUnreachable,
)
from quartermaster.dp.store import Cancelled

ENROLL_ADVICE = replace(
    ADVICE,
    unreachable="check --site (the site server's URL, e.g. http://127.0.0.1:8440) and that "
    "the site server runs",
)
# Enrolling waits for a site that may be starting in the same process; cycles after a failure
# back off further, with jitter so that DPs do not all come back at once after a site outage.
ENROLL_BACKOFF = Backoff(first=0.5, cap=30.0)
CYCLE_BACKOFF_FIRST = 2.0
# Seconds between walks of the store to count its bytes (reported to the site); between
# them the count follows what pulls bring and sweeps free.
USED_RECOUNT = 600.0


class NotEnrolled(QMError):
    code = "not_enrolled"

    def __init__(self, home: DPHome) -> None:
        super().__init__(
            f"the DP in {home.root} is not enrolled with a site",
            "start it once with --site URL --token qme_... (from the site admin)",
        )


def enroll(
    home: DPHome, site_url: str, token: str, url: str | None = None, ca_file: Path | None = None
) -> DPIdentity:
    """Trade a one-time enrollment token for a credential and store it in the DP home.

    `ca_file` is pinned: the only TLS trust for this call and every later one.
    """
    ca_bytes = read_ca_file(ca_file) if ca_file is not None else None
    context = pinned_context(ca_file) if ca_file else None
    link = SiteLink(site_url, ssl_context=context, advice=ENROLL_ADVICE)
    try:
        enrollment = link.enroll(token, url)
    finally:
        link.close()
    identity = DPIdentity.from_enrollment(site_url, enrollment, url or "")
    identity = home.pin_ca(identity, ca_bytes)
    home.save_identity(identity)
    home.log().write(
        f"enrolled as DP {enrollment.dp} with site {enrollment.site_code} at {identity.site_url}"
    )
    return identity


async def run_dp(
    home: DPHome,
    site_url: str | None = None,
    token: str | None = None,
    url: str | None = None,
    **options: Any,
) -> None:
    """Enroll if needed, then run the agent until the task is cancelled (the embedded DP).

    Enrollment is retried while the site does not answer yet (it may be starting in the
    same process); a refused token raises EnrollmentRefused.
    """
    identity = home.load_identity()
    if identity is None:
        if not (site_url and token):
            raise NotEnrolled(home)
        identity = await retry_async(
            lambda: asyncio.to_thread(enroll, home, site_url, token, url),
            retry_on=(SiteUnreachable,),
            backoff=ENROLL_BACKOFF,
        )
    await DPAgent(home, identity, **options).run_async()


class DPAgent:
    """Pulls, validates, removes and reports; one instance per DP home, run once."""

    def __init__(
        self,
        home: DPHome,
        identity: DPIdentity | None = None,
        *,
        poll_interval: float = 60.0,
        progress_interval: float = 15.0,
        max_backoff: float = 300.0,
        metrics: DPMetrics | None = None,
        local_library: Path | None = None,
    ) -> None:
        """`local_library`: a content library folder on this host to copy blobs from before
        asking the sources (the embedded DP's site library; see dp/local_fill.py)."""
        identity = identity or home.load_identity()
        if identity is None:
            raise NotEnrolled(home)
        self.home, self.identity = home, identity
        self.metrics = metrics or DPMetrics()  # its content server's, when it has one
        self.poll_interval, self.progress_interval = poll_interval, progress_interval
        self._failures_in_a_row = FailureStreak(
            Backoff(CYCLE_BACKOFF_FIRST, cap=max_backoff, jitter=0.5)
        )
        self.store = home.store(identity)
        self.log = home.log()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and wake(): ends the wait between cycles
        tls = home.ssl_context(identity)
        self.link = SiteLink(identity.site_url, identity.credential, ssl_context=tls)
        self.distributor = Distributor(
            self.store,
            identity.trusted_keys(),
            self.log,
            identity.credential,
            cancel=self._stop.is_set,
            ssl_context=tls,
            local_library=local_library,
        )
        self._validated = home.load_validation_times()
        self._kept: set[str] | None = None  # the versions kept at the last clean-up
        self._unassigned: dict[str, float] = {}  # package hash -> when first seen unassigned
        self._failures: dict[str, str] = {}  # package hash -> last failure reason reported
        self._used_bytes = 0  # counted by a walk of the store now and then, kept up between
        self._used_counted = -USED_RECOUNT

    # --- running ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the agent to stop; a transfer stops at its next chunk and its .part stays."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Start the next cycle now (the site calls this after it assigned new content)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_forever(self) -> None:
        """Cycle until `stop()`: site trouble backs off, it never ends the loop."""
        self.log.write(
            f"DP {self.identity.dp} started: store {self.store.root}, site {self.identity.site_url}"
        )
        self.store.remove_stale_temps()
        try:
            while not self._stop.is_set():
                self._wake.wait(self._next_wait(self._cycle()))
                self._wake.clear()
        finally:
            self.distributor.close()
            self.link.close()
            self.log.write(f"DP {self.identity.dp} stopped")

    def _cycle(self) -> bool:
        try:
            self.run_once()
        except Cancelled:
            self.log.write("stopping mid-cycle; an interrupted download resumes from its .part")
            return True
        except SiteError as exc:
            self.log.warning(f"the site failed: {exc}")
            return False
        except SiteUnreachable as exc:
            self.log.warning(f"site unreachable: {exc}")
            return False
        except (Unauthorized, Forbidden) as exc:
            self.log.error(f"the site refused this DP's credential: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - a DP keeps serving through any one failure
            self.log.error(f"cycle failed: {exc.__class__.__name__}: {exc}")
            return False
        return True

    def _next_wait(self, succeeded: bool) -> float:
        """The poll interval after a good cycle; a growing, jittered delay after failures."""
        if succeeded:
            self._failures_in_a_row.succeeded()
            return self.poll_interval
        delay = self._failures_in_a_row.failed()
        self.log.write(f"retrying in {delay:.0f} s")
        return delay

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread named `distmgr`; call `stop()` then `join()` to end it."""
        thread = threading.Thread(target=self.run_forever, name="distmgr", daemon=True)
        thread.start()
        return thread

    async def run_async(self) -> None:
        """Run from an asyncio loop (the site's); cancelling the task stops the agent cleanly."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def body() -> None:
            error: BaseException | None = None
            try:
                self.run_forever()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(_settle, done, error)

        threading.Thread(target=body, name="distmgr", daemon=True).start()
        try:
            await asyncio.shield(done)
        finally:
            self.stop()
            await done

    # --- one cycle ----------------------------------------------------------------------

    def run_once(self) -> None:
        """Ask the site what to hold, then bring every version in line and report."""
        listing = self.link.assignments()
        self._follow_signing_keys(listing.signing_keys)
        self._clean_up(listing)
        if time.monotonic() - self._used_counted >= USED_RECOUNT:
            self._used_bytes = self.store.used_bytes()
            self._used_counted = time.monotonic()
        sent = False
        backlog = {a.package_hash for a in listing.assignments if a.state != "installed"}
        self.metrics.backlog.set(len(backlog))
        for assignment in listing.assignments:
            if self._stop.is_set():
                raise Cancelled()
            entry = self._reconcile(assignment, listing)
            if entry is not None:
                self._report([entry])
                sent = True
                if entry.state == "installed":
                    backlog.discard(assignment.package_hash)
                    self.metrics.backlog.set(len(backlog))
        if not sent:
            self._report([])  # heartbeat

    def _follow_signing_keys(self, envelope: object) -> None:
        """Trust the keys of a newer signed key list (key rotation, docs/security.md).

        The list must be signed by a key this DP trusts already; a DP that missed a whole
        rotation cannot follow it and must be enrolled again.
        """
        if envelope is None:
            return
        try:
            version, keys = accept_key_list(
                envelope,
                self.identity.trusted_keys(),
                site_code=self.identity.site_code,
                min_version=self.identity.keys_version,
            )
        except SignatureError as exc:
            self.log.write(
                f"the site's signed key list was refused: {exc}; if the site "
                "retired the key this DP knows, enroll the DP again"
            )
            return
        entries = tuple(k.to_dict() for k in keys)
        if version == self.identity.keys_version and entries == self.identity.signing_keys:
            return
        self.identity = replace(self.identity, signing_keys=entries, keys_version=version)
        self.home.save_identity(self.identity)
        self.distributor.trusted_keys = self.identity.trusted_keys()
        self.log.write(
            f"site signing keys now (version {version}): {', '.join(k.keyid for k in keys)}"
        )

    def _clean_up(self, listing: AssignmentList) -> None:
        """Remove what is no longer assigned, once it has been so for the grace period.

        A client may be downloading a version the site just replaced or pruned, so it stays
        for `listing.grace` seconds from the first cycle that found it unassigned (a restart
        of the DP starts that time again).
        """
        assigned = {a.package_hash for a in listing.assignments}
        now = time.monotonic()
        for package_hash in self.store.held_versions():
            if package_hash not in assigned and package_hash not in self._unassigned:
                self._unassigned[package_hash] = now
                self.log.write(
                    f"version {package_hash} is no longer assigned: kept for the grace period "
                    f"({listing.grace:.0f} s), downloads may be under way"
                )
        for package_hash in assigned:
            self._unassigned.pop(package_hash, None)
        keep = assigned | {h for h, t in self._unassigned.items() if now - t < listing.grace}
        if self._kept is not None and keep >= self._kept:
            # Only versions added: nothing becomes unused, and a sweep walks every blob of
            # the store (seconds for a large one) before the new version's pull could start.
            self._kept = keep
            return
        result = self.store.gc(keep)
        self._used_bytes = max(0, self._used_bytes - result.freed_bytes)
        for package_hash in result.removed_versions:
            self.log.write(f"version {package_hash} is no longer assigned: removed")
            self._unassigned.pop(package_hash, None)
            self._validated.pop(package_hash, None)
        if result.removed_blobs or result.freed_bytes:
            self.log.write(
                f"removed {result.removed_blobs} unused blobs, {result.freed_bytes} bytes freed"
            )
        self._kept = keep
        self.home.save_validation_times(self._validated)

    def _reconcile(self, a: Assignment, listing: AssignmentList) -> ContentReport | None:
        try:
            return self._bring_in(a, listing)
        except (SiteUnreachable, Unauthorized, Forbidden):
            raise
        except QMError as exc:
            return self._failure(a, str(exc))
        except OSError as exc:  # the DP's own disk: full, read-only, failing
            return self._failure(a, f"{exc.__class__.__name__}: {exc}")

    def _bring_in(self, a: Assignment, listing: AssignmentList) -> ContentReport | None:
        manifest = self._manifest(a)
        bad = self._validate_if_asked(a, listing.validate_interval)
        total = sum(manifest.blobs().values())
        if missing := self.store.missing_blobs(manifest):
            progress = self._pull(a, manifest, missing, listing)
            # what the pull brought in; the next cycle counts the store again (a walk of
            # every blob's stat, seconds for a large store: not between a pull and its report)
            self._used_bytes += progress.bytes_transferred
            entry = ContentReport(
                a.package_hash,
                "installed",
                progress.bytes_done,
                progress.bytes_total,
                progress.bytes_transferred,
            )
            self.log.write(
                f"{a.label}: installed, {progress.blobs_fetched} blobs "
                f"({progress.bytes_transferred} bytes) transferred"
            )
        elif bad is None and a.state == "installed":
            return None
        else:
            entry = ContentReport(a.package_hash, "installed", total, total)
        if bad is not None:
            entry.validated, entry.bad_blobs = True, len(bad)
        self._failures.pop(a.package_hash, None)
        if a.package_hash not in self._validated:  # every blob was verified on arrival
            self._mark_validated(a.package_hash)
        return entry

    def _manifest(self, a: Assignment) -> Manifest:
        if self.store.has_manifest(a.package_hash):
            try:
                return self.store.manifest(a.package_hash)
            except QMError as exc:
                self.log.write(f"{a.label}: stored manifest is damaged ({exc}); fetching it again")
                self.store.remove_manifest(a.package_hash)
        envelope = self.link.manifest(a.package_hash)
        manifest = self.distributor.accept_manifest(a.package_hash, envelope)
        self.log.write(
            f"{a.label}: manifest verified and stored, {len(manifest.files)} files, "
            f"{manifest.total_size} bytes"
        )
        return manifest

    def _validate_if_asked(self, a: Assignment, interval: int) -> list[str] | None:
        last = self._validated.get(a.package_hash)
        due = interval > 0 and last is not None and time.time() - last >= interval
        asked = a.validate or a.state == "validation_failed"
        if not (asked or due):
            return None
        self.log.write(f"{a.label}: validating ({'asked by the site' if asked else 'scheduled'})")
        bad = self.distributor.validate([a.package_hash])
        self.metrics.validated(len(bad))
        self._mark_validated(a.package_hash)
        self.log.write(f"{a.label}: validation found {len(bad)} bad blobs")
        return bad

    def _mark_validated(self, package_hash: str) -> None:
        self._validated[package_hash] = time.time()
        self.home.save_validation_times(self._validated)

    def _pull(
        self, a: Assignment, manifest: Manifest, missing: dict[str, int], listing: AssignmentList
    ) -> PullProgress:
        sources = listing.sources
        need, total = sum(missing.values()), sum(manifest.blobs().values())
        self.log.write(
            f"{a.label}: pulling {len(missing)} blobs ({need} bytes) from {len(sources)} sources"
        )
        self._report([ContentReport(a.package_hash, "distributing", total - need, total)])
        return self.distributor.pull(
            manifest, sources, self._progress_reporter(a), library=listing.library, missing=missing
        )

    def _progress_reporter(self, a: Assignment) -> Callable[[PullProgress], None]:
        last = time.monotonic()

        def on_progress(p: PullProgress) -> None:
            nonlocal last
            if time.monotonic() - last < self.progress_interval:
                return
            last = time.monotonic()
            entry = ContentReport(
                a.package_hash, "distributing", p.bytes_done, p.bytes_total, p.bytes_transferred
            )
            try:
                self._report([entry])
            except QMError as exc:  # progress is best effort; the final state is not
                self.log.write(f"progress report not delivered: {exc.message}")

        return on_progress

    def _failure(self, a: Assignment, reason: str) -> ContentReport | None:
        self.log.error(f"{a.label}: failed: {reason}")
        if a.state == "failed" and self._failures.get(a.package_hash) == reason:
            return None  # the site knows already
        self._failures[a.package_hash] = reason
        return ContentReport(a.package_hash, "failed", reason=reason)

    def _report(self, contents: list[ContentReport]) -> None:
        self.link.report(Report(self.store.free_bytes(), self._used_bytes, contents))


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
