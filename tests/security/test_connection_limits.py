"""One connection cannot take the site's memory or hold a connection open for ever, on
either plane: the API (uvicorn) and the content plane (aiohttp) of a real `qm site serve`.

Before, one 512 MiB header was answered 200 and left the site at ~700 MiB, and slowloris
connections were still open after 70 s.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Daemon, SiteServer, free_port_pair, wait_until
from tests.e2e.site_templates import migrated_site_home

pytestmark = pytest.mark.e2e

TIMEOUT = 2.0  # the site's header, idle and keep-alive timeouts in this test


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    home, port = tmp_path / "site", free_port_pair()
    migrated_site_home(home, listen=f"127.0.0.1:{port}")
    config = json.loads((home / "config.json").read_text())
    config.update(header_timeout=TIMEOUT, idle_timeout=TIMEOUT, keep_alive_timeout=TIMEOUT)
    (home / "config.json").write_text(json.dumps(config))
    server = SiteServer(home, port, Daemon(["site", "serve", "--home", str(home)], tmp_path / "l"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def _rss_kib(site: SiteServer) -> int:
    assert site.daemon.proc is not None
    status = Path(f"/proc/{site.daemon.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_large_headers_are_refused_before_they_cost_memory(site: SiteServer) -> None:
    with _connect(site.port) as sock:  # just over the bound: a clear 431
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = _answer(sock)
    assert _status(answer) == 431, answer[:200]
    assert b'"headers_too_large"' in answer
    with _connect(site.port + 1) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        assert _status(_answer(sock)) == 400
        # many short header lines add up too: refused, not buffered
    with _connect(site.port + 1) as sock:
        lines = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 8000) for n in range(200))
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
            answer = _answer(sock)
        except (BrokenPipeError, ConnectionResetError):
            answer = b"HTTP/1.1 400 refused while the request was still arriving"
        assert _status(answer) == 400
    before = _rss_kib(site)
    for port in (site.port, site.port + 1):  # 256 MiB of one header, sent to each plane
        sent = 0
        with _connect(port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                while sent < 256 * 2**20:
                    sock.sendall(b"a" * 2**20)
                    sent += 2**20
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert sent < 256 * 2**20, f"port {port} took the whole header"
    after = _rss_kib(site)
    print(f"site RSS {before} KiB before two 256 MiB headers, {after} KiB after")
    assert after - before < 64 * 1024, (before, after)
    assert httpx.get(f"{site.url}/healthz").status_code == 200


def _closed_by_server(sock: socket.socket, trickle: bool) -> bool:
    """True once the site hung up; with `trickle`, first send one more byte of a request
    that never ends (a slowloris keeps its connection busy; a stalled body sends nothing)."""
    try:
        if trickle:
            sock.send(b"a")
        sock.setblocking(False)
        try:
            return sock.recv(65536) == b""
        except BlockingIOError:
            return False
        finally:
            sock.setblocking(True)
    except (BrokenPipeError, ConnectionResetError):
        return True


def test_slow_and_silent_connections_are_closed_on_both_planes(site: SiteServer) -> None:
    socks: list[tuple[socket.socket, bool]] = []  # (connection, keeps trickling bytes)
    for port in (site.port, site.port + 1):
        for _ in range(5):  # slowloris: headers that never end
            sock = _connect(port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append((sock, True))
        socks.append((_connect(port), False))  # a connection that never says anything
    body = _connect(site.port)  # a body that stops arriving
    body.sendall(b"POST /api/v1/packages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    socks.append((body, False))
    kept = httpx.Client(base_url=site.url)  # an ordinary client reusing its connection
    assert kept.get("/healthz").status_code == 200
    assert kept.get("/healthz").status_code == 200
    started = time.monotonic()
    try:
        for sock, trickle in socks:
            wait_until(
                lambda s=sock, t=trickle: _closed_by_server(s, t),
                "the site to close a slow connection",
            )
    finally:
        for sock, _ in socks:
            sock.close()
        kept.close()
    print(f"every slow connection closed after {time.monotonic() - started:.1f} s")
    assert httpx.get(f"{site.url}/healthz").status_code == 200
