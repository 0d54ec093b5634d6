"""Attackers on the wire and on a DP, as real HTTP servers on 127.0.0.1.

`TamperingProxy` stands between a client and the site (the client registered through it)
and can replace any answer, as a man in the middle would. `RogueDP` is a compromised DP
host: enrolled with a real token, it tells the site it holds a version, then serves
whatever it likes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# A rule sees (method, path, upstream response) and returns (status, headers, body) to send
# instead, or None to pass the site's answer through.
Answer = tuple[int, dict[str, str], bytes]
Rule = Callable[[str, str, httpx.Response], Answer | None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Running:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy: TamperingProxy = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() in ("authorization", "content-type", "if-none-match")
        }
        upstream = httpx.request(
            self.command, proxy.target + self.path, headers=headers, content=body, timeout=60
        )
        proxy.seen.append((self.command, self.path, upstream.status_code))
        answer = None
        for rule in list(proxy.rules):
            answer = rule(self.command, self.path, upstream)
            if answer is not None:
                proxy.tampered.append(self.path)
                break
        if answer is None:
            keep = {
                k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "etag")
            }
            answer = (upstream.status_code, keep, upstream.content)
        status, out_headers, data = answer
        self.send_response(status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


@dataclass
class TamperingProxy:
    """A man in the middle between clients and the site's API."""

    target: str
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    _running: _Running | None = None

    def start(self) -> TamperingProxy:
        self._running = _Running(_ProxyHandler)
        self._running.httpd.owner = self  # type: ignore[attr-defined]
        return self

    @property
    def url(self) -> str:
        assert self._running is not None
        return self._running.url

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()


class _RogueHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        rogue: RogueDP = self.server.owner  # type: ignore[attr-defined]
        rogue.requests.append(self.path)
        rogue.authorizations.append(self.headers.get("Authorization", ""))
        if not self.path.startswith("/content/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if rogue.announce_length is not None:
            self.send_header("Content-Length", str(rogue.announce_length))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in rogue.endless():
                data = (
                    chunk
                    if rogue.announce_length is not None
                    else (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                )
                self.wfile.write(data)
                rogue.bytes_sent += len(chunk)
        except OSError:  # the client hung up: what a good client does
            rogue.hung_up += 1
        self.close_connection = True


class RogueDP:
    """A DP that answers every blob request with endless bytes.

    `announce_length`: send a Content-Length header of that many bytes (and then keep
    sending); None: chunked transfer with no announced end at all.
    """

    def __init__(self, announce_length: int | None = None) -> None:
        self.announce_length = announce_length
        self.requests: list[str] = []
        self.authorizations: list[str] = []  # the Authorization header of each request
        self.bytes_sent = 0
        self.hung_up = 0
        self._stop = threading.Event()
        self._running = _Running(_RogueHandler)
        self._running.httpd.owner = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return self._running.url

    def endless(self) -> Iterator[bytes]:
        chunk = b"A" * 65536
        while not self._stop.is_set():
            yield chunk

    def stop(self) -> None:
        self._stop.set()
        self._running.stop()
