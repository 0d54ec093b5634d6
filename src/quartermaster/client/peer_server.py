"""The peer cache, client side: serve verified cached blobs to the clients of this boundary.

`qm client run --peer-listen ADDR:PORT` starts a small HTTP server in the agent's process.
It answers one kind of request, `GET /peer/<ticket>/content/sha256/<aa>/<hash>` (the DP
store layout behind a ticket, so a peer is a location like a DP), and only when:

- the site said, in its answer to this client's last peer report, that it may serve (the
  peer cache is on for its boundary, the computer is not on battery nor metered, and no
  client has reported bad bytes from it since it last re-validated);
- the ticket is signed by a site key this client trusts, names this client's boundary and
  has not expired (core/peer_ticket.py): a stranger or a client of another boundary gets
  403 and learns nothing about what this computer holds;
- the blob is whole in the cache and was verified by this process: downloaded through the
  hashing fetcher, or re-hashed here before it is first served (a file whose inode, size or
  modification time changed since is hashed again). A chunk is served as its slice of the
  chunked file the cache holds whole (client/cache.py), hashed on its own the same way.

Transfers at once are limited (more requests wait in turn, first come first served, up to
a bound; beyond it a connection gets 503 at once), so are the bytes per second over all
connections, the request line and headers (http.server: 64 KiB, 100 headers), and a
connection that sends nothing for 30 s is closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from quartermaster.client.cache import ContentCache, Slice
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.durable_files import write_atomic
from quartermaster.core.errors import InvalidInput
from quartermaster.core.peer_ticket import TicketRefused, read_ticket
from quartermaster.core.signing import PublicKey

_PATH = re.compile(r"/peer/([A-Za-z0-9_-]{1,4096})/content/sha256/([0-9a-f]{2})/([0-9a-f]{64})")
_RANGE = re.compile(r"bytes=(\d{1,15})-")
SEND_CHUNK = 1024 * 1024
IDLE_SECONDS = 30
HOLDINGS_FILE = "peer-holdings.json"
WAITING_FACTOR = 8
# Seconds a request waits for a transfer slot before 503: below the fetcher's 30 s idle
# timeout (core/blob_transfer.py), so the client hears "busy" rather than timing out while
# this peer would still send to it later.
TRANSFER_WAIT = 25.0


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT (IPv6 as [ADDR]:PORT) as given to --peer-listen."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise InvalidInput(f"--peer-listen {text!r} is not ADDR:PORT", "e.g. 10.1.0.5:8450")
    return host.strip("[]"), int(port)


def on_battery(power_supply: Path = Path("/sys/class/power_supply")) -> bool:
    """True when a battery is discharging (Linux sysfs); False where there is none."""
    for supply in power_supply.glob("*"):
        with contextlib.suppress(OSError):
            kind = (supply / "type").read_text().strip()
            if kind == "Battery" and (supply / "status").read_text().strip() == "Discharging":
                return True
    return False


def metered(home: Path) -> bool:
    """True while `<home>/metered` exists: a NetworkManager dispatcher script (or the
    administrator) creates it on a metered connection and removes it after."""
    return (home / "metered").exists()


class VerifiedBlobs:
    """Cached blobs this process has verified, by the file's identity when it was."""

    def __init__(self, cache: ContentCache) -> None:
        self.cache = cache
        self._known: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _identity(path: Path) -> tuple[int, int, int]:
        info = path.stat()
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def record(self, sha256: str) -> None:
        """The fetcher just verified this blob into the cache."""
        with contextlib.suppress(FileNotFoundError), self._lock:
            self._known[sha256] = self._identity(self.cache.blob_path(sha256))

    def touched(self, blobs: list[str]) -> None:
        """The cache marked these blobs used (a new modification time, same bytes): those
        verified by this process stay verified."""
        with self._lock:
            for sha in blobs:
                if sha in self._known:
                    with contextlib.suppress(FileNotFoundError):
                        self._known[sha] = self._identity(self.cache.blob_path(sha))

    def check(self, sha256: str) -> Slice | None:
        """Where the blob's bytes are if they are whole and verified; hashed now when not
        known yet (a chunk: its slice of the file that holds it)."""
        found = self.cache.locate(sha256)
        if found is None:
            return None
        try:
            identity = self._identity(found.path)
        except FileNotFoundError:
            return None
        with self._lock:
            if self._known.get(sha256) == identity:
                return found
            if not self._rehash(sha256, found):
                self._known.pop(sha256, None)
                return None
            self._known[sha256] = identity
            return found

    def revalidate(self) -> int:
        """Forget what was verified, re-hash every cached blob, remove the bad ones."""
        with self._lock:
            self._known.clear()
        bad = 0
        for entry in self.cache.entries():
            if entry.partial:
                continue
            if self.check(entry.sha256) is None:
                self.cache.remove(entry.sha256)
                bad += 1
        return bad

    @staticmethod
    def _rehash(sha256: str, found: Slice) -> bool:
        try:
            with found.path.open("rb") as handle:
                if found.offset == 0 and found.holder == sha256:
                    return hashlib.file_digest(handle, "sha256").hexdigest() == sha256
                handle.seek(found.offset)
                data = handle.read(found.length)
        except OSError:
            return False
        return len(data) == found.length and hashlib.sha256(data).hexdigest() == sha256


@dataclass
class PeerState:
    """What the site last said about this peer, and the keys that sign its tickets."""

    serve: bool = False
    boundary: str = ""
    reason: str = "not yet reported to the site"
    trusted: dict[str, PublicKey] = field(default_factory=dict)


class Pacer:
    """One byte rate for all connections together (None: unlimited)."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def spend(self, count: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + count / self.rate
            delay = start - now
        if delay > 0:
            time.sleep(delay)


class FairSlots:
    """`count` transfers at once, the waiting requests served in the order they came.

    A semaphore lets a request that just arrived take a slot that a woken waiter was meant
    to have, and the waiter queues again at the back: when a whole branch asks one peer at
    once, one request could be passed over until it timed out (and its client went to the
    DP across the WAN). Here a released slot is handed to the first waiter directly."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._queue: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free and not self._queue:
                self._free -= 1
                return True
            turn = threading.Event()
            self._queue.append(turn)
        if turn.wait(timeout):
            return True
        with self._lock:
            if turn.is_set():  # handed over as the wait ran out
                return True
            self._queue.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._queue:
                self._queue.popleft().set()
            else:
                self._free += 1


class PeerServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        verified: VerifiedBlobs,
        state: PeerState,
        log: ComponentLog,
        max_connections: int = 8,
        rate: int | None = None,
        clock: Callable[[], float] = time.time,
        max_waiting: int | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _PeerHandler)
        self.verified, self.state, self.log, self.clock = verified, state, log, clock
        self.pacer = Pacer(rate)
        # `max_connections` transfers at once; as many again, times WAITING_FACTOR, wait for
        # one to end (a whole branch asking the first peer at once is served, in turn,
        # rather than sent to the DP across the WAN); beyond that, 503 at once.
        waiting = max_connections * WAITING_FACTOR if max_waiting is None else max_waiting
        self.slots = threading.BoundedSemaphore(max_connections + waiting)
        self.transfers = FairSlots(max_connections)
        self.served_bytes = 0
        self._count_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Over the connection limit: 503 at once, no thread started."""
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 5\r\nConnection: close\r\n\r\n"
                )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def count(self, sent: int) -> None:
        with self._count_lock:
            self.served_bytes += sent


class _PeerHandler(BaseHTTPRequestHandler):
    server: PeerServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server_version = "quartermaster-peer"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Refusals and transfers are logged where they happen, without the ticket."""

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        found = _PATH.fullmatch(self.path)
        if found is None or found.group(2) != found.group(3)[:2]:
            return self._refuse(404, "no such object")
        state = self.server.state
        if not state.serve:
            return self._refuse(503, f"this peer does not serve now: {state.reason}")
        try:
            ticket = read_ticket(found.group(1), state.trusted, state.boundary, self.server.clock())
        except TicketRefused as exc:
            self.server.log.write(f"peer request from {self.client_address[0]}: {exc.message}")
            return self._refuse(403, exc.message)
        sha = found.group(3)
        where = self.server.verified.check(sha)
        if where is None:
            return self._refuse(404, "no such object")
        if not self.server.transfers.acquire(timeout=TRANSFER_WAIT):
            return self._refuse(503, "this peer is busy; try another source")
        try:
            self._send(where, sha, str(ticket.get("client_id", "")), send_body)
        finally:
            self.server.transfers.release()

    def _send(self, where: Slice, sha: str, who: str, send_body: bool) -> None:
        try:
            handle = where.path.open("rb")
        except OSError:
            return self._refuse(404, "no such object")
        with handle:
            size = where.length
            start = self._range_start(size)
            if start is None:
                return self._refuse(416, "the range is outside the blob")
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size - start))
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            if send_body:
                sent = self._sendfile(handle, where.offset + start, where.offset + size)
                self.server.count(sent)
                self.server.log.write(f"served blob {sha} from byte {start} to client {who}")

    def _range_start(self, size: int) -> int | None:
        header = self.headers.get("Range")
        if not header:
            return 0
        found = _RANGE.fullmatch(header.strip())
        if found is None:
            return 0  # a range form this server does not offer: the whole blob
        start = int(found.group(1))
        return start if start < size or start == size == 0 else None

    def _sendfile(self, handle: BinaryIO, offset: int, end: int) -> int:
        """sendfile of bytes offset..end in paced chunks; socket.sendfile honours the
        connection's timeout."""
        self.wfile.flush()
        sent = 0
        while offset < end:
            count = min(SEND_CHUNK, end - offset)
            self.server.pacer.spend(count)
            done = self.connection.sendfile(handle, offset, count)
            if done == 0:
                break
            offset += done
            sent += done
        return sent

    def _refuse(self, status: int, reason: str) -> None:
        body = json.dumps({"error": reason}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class PeerCache:
    """The peer cache of one agent process: the server, what was verified, what is held."""

    def __init__(
        self,
        home: Path,
        cache: ContentCache,
        listen: tuple[str, int],
        log: ComponentLog,
        max_connections: int = 8,
        rate: int | None = None,
    ) -> None:
        self.home = home
        self.cache = cache
        self.log = log
        self.verified = VerifiedBlobs(cache)
        self.state = PeerState()
        self.server = PeerServer(listen, self.verified, self.state, log, max_connections, rate)
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None
        self._revalidated = False

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="peer-server", daemon=True
        )
        self._thread.start()
        self.log.write(f"peer server listening on port {self.port}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def holding(self, package_hash: str, blobs: list[str]) -> None:
        """A package version whose blobs are all in the cache, verified."""
        self.verified.touched(blobs)
        known = self._holdings()
        known[package_hash] = sorted(set(blobs))
        write_atomic(self.home / HOLDINGS_FILE, json.dumps(known).encode(), 0o600)

    def _holdings(self) -> dict[str, list[str]]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.home / HOLDINGS_FILE).read_bytes())
            if isinstance(data, dict):
                return {str(k): [str(b) for b in v] for k, v in data.items()}
        return {}

    def held(self) -> list[str]:
        """The versions whose every blob is still in the cache (eviction may take some)."""
        return sorted(
            ph for ph, blobs in self._holdings().items() if all(self.cache.has(b) for b in blobs)
        )

    def report(self, send: Callable[[dict[str, Any]], dict[str, Any]], trusted: Any) -> None:
        """Tell the site what this peer holds and its power and network state; take its
        answer (serve or not, the boundary, re-validate first)."""
        body = {
            "port": self.port,
            "on_battery": on_battery(),
            "metered": metered(self.home),
            "holds": self.held(),
            "revalidated": self._revalidated,
        }
        answer = send(body)
        if answer.get("revalidate") is True:
            self.state.serve = False
            bad = self.verified.revalidate()
            self.log.warning(
                f"another client reported bad bytes from this peer: cache re-validated, "
                f"{bad} damaged blobs removed"
            )
            self._revalidated = True
            answer = send({**body, "holds": self.held(), "revalidated": True})
        self._revalidated = False
        self.state.trusted = dict(trusted)
        self.state.boundary = str(answer.get("boundary") or "")
        self.state.reason = str(answer.get("reason") or "")
        self.state.serve = answer.get("serve") is True and bool(self.state.boundary)
        self.log.write(
            f"peer report: serving {'yes' if self.state.serve else 'no'}"
            + (f" for boundary {self.state.boundary}" if self.state.serve else "")
            + (f" ({self.state.reason})" if self.state.reason else "")
        )
