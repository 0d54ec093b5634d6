"""The pack request: many blobs in one HTTP answer, each verified by its own SHA-256.

A package of thousands of small files costs a request, an answer head, a file open and a
rename per file when fetched blob by blob; on loopback that is most of its time. A pack
request asks a store for a list of blobs in one POST and gets them back to back:

    POST <store>/content/pack            body: one 64-hex SHA-256 per line, at most MAX_BLOBS
    200, Content-Type: PACK_MEDIA_TYPE   body: for each hash asked, in order:
        "<sha256> <size>\\n" then exactly <size> bytes     (a blob the store holds)
        "<sha256> -\\n"                                    (one it does not hold)

Nothing in an answer is trusted: each blob's size must be the one the manifest gives and
its bytes must hash to its name before it is renamed into place. A blob the store lacks is
reported as missing, not as a failure of the batch. An answer cut short keeps every blob
completed before the cut; asking again for what is still missing resumes. A store that
has no pack route (a stock nginx over a plain store answers 405, an older DP 404) is
`PackUnsupported`: the caller falls back to one GET per blob.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from quartermaster.core.blob_transfer import BlobFetcher, TransferError
from quartermaster.core.durable_files import sync_file_system
from quartermaster.core.errors import HashMismatch, IntegrityError, QMError

PACK_ROUTE = "content/pack"
PACK_MEDIA_TYPE = "application/vnd.quartermaster.pack"
MAX_BLOBS = 10_000  # hashes in one request: bounds the request body and the answer's head
MISSING = b"-"
HEAD_LINE_MAX = 64 + 1 + 20 + 1  # "<sha256> <size>\n"
# A client asks for at most this many bytes in one pack (a cut answer loses at most the blob
# in flight) and only for blobs below BLOB_LIMIT: larger ones go by GET, which resumes
# within a blob and receives on two threads.
BATCH_BYTES = 64 * 1024 * 1024
BLOB_LIMIT = 1024 * 1024
TEMP_PREFIX = ".tmp-"  # as durable_files' temps: a DP's sweep removes those a kill left
BLOB_MODE = 0o444


class PackUnsupported(TransferError):
    """The source has no pack route: fetch blob by blob with GET."""

    code = "pack_unsupported"


def pack_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/{PACK_ROUTE}"


def record_head(sha256: str, size: int | None) -> bytes:
    """The line before a blob's bytes in an answer; `None` says the store lacks it."""
    return f"{sha256} {'-' if size is None else size}\n".encode("ascii")


def batches(
    blobs: dict[str, int],
    blob_limit: int | None = BLOB_LIMIT,
    max_blobs: int = MAX_BLOBS,
    max_bytes: int = BATCH_BYTES,
) -> Iterator[dict[str, int]]:
    """The blobs below `blob_limit` (None: all) in groups of at most `max_blobs` blobs and
    `max_bytes` bytes (a larger blob alone), in their order."""
    batch: dict[str, int] = {}
    held = 0
    for sha256, size in blobs.items():
        if blob_limit is not None and size >= blob_limit:
            continue
        if batch and (len(batch) >= max_blobs or held + size > max_bytes):
            yield batch
            batch, held = {}, 0
        batch[sha256] = size
        held += size
    if batch:
        yield batch


@dataclass
class PackResult:
    stored: dict[str, int] = field(default_factory=dict)  # sha256 -> bytes, now in place
    missing: list[str] = field(default_factory=list)  # the source does not hold these
    failure: QMError | None = None  # why the answer stopped before its end, if it did

    @property
    def bytes_transferred(self) -> int:
        return sum(self.stored.values())

    def log_lines(self, source: str, asked: int) -> list[str]:
        """What a component log says of one pack: what came, and why it stopped (the rest
        is then fetched blob by blob)."""
        lines = [
            f"pack from {source}: {len(self.stored)} of {asked} blobs, "
            f"{self.bytes_transferred} bytes, SHA-256 verified"
            + (f"; {len(self.missing)} not held there" if self.missing else "")
        ]
        if self.failure is not None:
            lines.append(
                f"pack from {source} stopped: {self.failure.message}; "
                "the rest is fetched blob by blob"
            )
        return lines


Destination = Callable[[str], Path]
# Given a verified blob's bytes on a writer thread: True if it put them somewhere of its own
# (a client writes a chunk straight into the file it belongs to), False to write the file.
Placement = Callable[[str, bytes], bool]


def fetch_pack(
    fetcher: BlobFetcher,
    base_url: str,
    wanted: dict[str, int],
    destination: Destination,
    durable: bool,
    on_blob: Callable[[str, int], None] | None = None,
    place: Placement | None = None,
) -> PackResult:
    """Ask `base_url`'s store for `wanted` (sha256 -> manifest size) in one pack request and
    put each verified blob at `destination(sha256)`.

    Returns what was stored, what the source said it lacks, and, if the answer stopped
    early, why (`failure`: PackUnsupported when the source has no pack route, HashMismatch
    or IntegrityError when it sent wrong bytes, TransferError when the answer was cut or
    refused). Every blob completed before a failure is kept. The caller fetches what is not
    stored some other way, and does not ask a source that failed for another pack.

    With `durable` (a DP store, served as it is), blobs go to temp files, renamed into place
    only after one syncfs of their file system made their bytes durable, and a second one
    makes the renames durable: two journal commits per pack instead of two fsyncs per blob.
    Without it (the client cache, which is hashed again before any later use, see
    client/work_layout.py) a blob is written under its own name and removed at once if it
    does not match: one file creation per blob instead of a creation and a rename; a blob
    torn by a crash is caught by that later hash. `on_blob(sha256, size)` is called for
    each blob received and may raise to stop the transfer (what is complete is kept).
    `place` may take a verified blob instead of its file (see Placement); it is then in
    `stored` like the others.
    """
    url = pack_url(base_url)
    body = "".join(f"{sha}\n" for sha in wanted).encode("ascii")
    headers = {"Content-Type": "text/plain", "Accept": PACK_MEDIA_TYPE}
    result = PackResult()
    writers = _Writers(place)
    try:
        response = fetcher.post(url, body, headers)
        _check_answer(url, response)
        for _ in range(len(wanted)):
            sha256, size = _read_head(response, url, wanted)
            if size is None:
                result.missing.append(sha256)
                continue
            dest = destination(sha256)
            data = _read_blob(response, url, sha256, size)
            target = dest.with_name(f"{TEMP_PREFIX}{dest.name}.pack") if durable else dest
            writers.submit(_Written(target, dest, sha256, size), data, url)
            if on_blob is not None:
                on_blob(sha256, size)
        writers.wait()
        if response.read(1):
            raise IntegrityError(f"{url}: the answer holds more than the blobs asked for")
        if response.will_close:
            fetcher.drop(url)
    except (OSError, http.client.HTTPException) as exc:
        fetcher.drop(url)
        result.failure = TransferError(
            f"{url}: {exc.__class__.__name__}: {exc}",
            "the blobs not yet received are asked for again",
        )
    except QMError as exc:
        fetcher.drop(url)
        result.failure = exc
        if not isinstance(exc, (TransferError, IntegrityError)):
            _publish(writers.close(), durable, result)
            raise  # a stop asked for by `on_blob`
    except BaseException:
        fetcher.drop(url)
        _publish(writers.close(), durable, result)
        raise
    _publish(writers.close(), durable, result)
    return result


WRITERS = 4  # threads creating files: a file creation waits on the journal, not the CPU
IN_FLIGHT = 32  # blobs received and not yet written (each below BLOB_LIMIT)


@dataclass(frozen=True)
class _Written:
    target: Path  # where the bytes go: `dest`, or a temp beside it
    dest: Path
    sha256: str
    size: int


class _Writers:
    """Check and write received blobs on a few threads, so that file creations (each one
    waits for the file system's journal) overlap instead of queueing behind each other.
    The first failure stops the receiving thread at its next blob."""

    def __init__(self, place: Placement | None) -> None:
        self.place = place
        self.pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="pack-write")
        self.slots = threading.BoundedSemaphore(IN_FLIGHT)
        self.lock = threading.Lock()
        self.done: list[_Written] = []
        self.failure: BaseException | None = None

    def submit(self, written: _Written, data: bytes, url: str) -> None:
        self._raise_failure()
        self.slots.acquire()
        self.pool.submit(self._write, written, data, url)

    def _write(self, written: _Written, data: bytes, url: str) -> None:
        try:
            if self.failure is None:
                _verify(written, data, url)
                if self.place is None or not self.place(written.sha256, data):
                    _write_blob(written, data)
                with self.lock:
                    self.done.append(written)
        except BaseException as exc:  # noqa: BLE001 - handed to the receiving thread
            with self.lock:
                self.failure = self.failure or exc
        finally:
            self.slots.release()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def wait(self) -> None:
        """Every blob handed over is written; raises the first failure."""
        self.pool.shutdown(wait=True)
        self._raise_failure()

    def close(self) -> list[_Written]:
        self.pool.shutdown(wait=True)
        return self.done


def _read_blob(response: http.client.HTTPResponse, url: str, sha256: str, size: int) -> bytes:
    data = response.read(size)
    if len(data) != size:
        raise TransferError(
            f"{url}: the answer ended inside blob {sha256}",
            "the blobs not yet received are asked for again",
        )
    return data


def _verify(written: _Written, data: bytes, url: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != written.sha256:
        raise HashMismatch(f"{url} (blob {written.sha256})", written.sha256, actual)


def _write_blob(written: _Written, data: bytes) -> None:
    """Write a verified blob to its target (read-only: a blob never changes)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(written.target, flags, BLOB_MODE)
    except FileNotFoundError:  # its folder is made on first need, not checked per blob
        written.target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(written.target, flags, BLOB_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        written.target.unlink(missing_ok=True)
        raise
    os.close(fd)


def _check_answer(url: str, response: http.client.HTTPResponse) -> None:
    if response.status == 200:
        kind = response.getheader("Content-Type", "")
        if kind.split(";")[0].strip() == PACK_MEDIA_TYPE:
            return
        raise PackUnsupported(f"{url}: the answer is {kind or 'untyped'}, not a pack")
    response.read()
    if response.status in (404, 405, 501):
        raise PackUnsupported(
            f"{url}: HTTP {response.status}: the source has no pack route",
            "blobs are fetched one by one",
        )
    raise TransferError(
        f"{url}: HTTP {response.status} {response.reason}", "the source refused the pack request"
    )


def _read_head(
    response: http.client.HTTPResponse, url: str, wanted: dict[str, int]
) -> tuple[str, int | None]:
    line = response.readline(HEAD_LINE_MAX + 1)
    if not line.endswith(b"\n"):
        raise TransferError(f"{url}: the answer ended before the blobs asked for")
    parts = line[:-1].split(b" ")
    if len(parts) != 2:
        raise IntegrityError(f"{url}: malformed record head {line[:80]!r}")
    sha256 = parts[0].decode("ascii", "replace")
    if sha256 not in wanted:
        raise IntegrityError(f"{url}: the answer holds a blob not asked for: {sha256[:80]}")
    if parts[1] == MISSING:
        return sha256, None
    if not parts[1].isdigit() or int(parts[1]) != wanted[sha256]:
        raise IntegrityError(
            f"{url}: blob {sha256} offered with {parts[1][:24]!r} bytes, "
            f"the manifest says {wanted[sha256]}",
            "refusing bytes of another size",
        )
    return sha256, wanted[sha256]


def _publish(written: list[_Written], durable: bool, result: PackResult) -> None:
    """Record what was written; durable blobs: one syncfs for their bytes, the renames,
    one syncfs for the names."""
    if not durable:
        result.stored.update((w.sha256, w.size) for w in written)
        return
    if not written:
        return
    sync_file_system(written[0].dest.parent)
    for item in written:
        os.replace(item.target, item.dest)
        result.stored[item.sha256] = item.size
    sync_file_system(written[0].dest.parent)
