"""Real HTTP servers on 127.0.0.1 for client tests: a DP store with Range, a canned JSON site."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from quartermaster.core.store_layout import blob_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Base:
    """Start on an ephemeral port in a thread; stop on exit."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _StoreHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        store: StoreServer = self.server.owner  # type: ignore[attr-defined]
        store.requests.append((self.path, self.headers.get("Range")))
        path = store.root / self.path.lstrip("/")
        if ".." in self.path or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        start = _range_start(self.headers.get("Range"))
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if store.drop_after is not None:
            self.wfile.write(body[: store.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return 0
    return int(header[len("bytes=") : -1])


class StoreServer(_Base):
    """A DP: serves `root` in the store layout, honours `Range: bytes=N-`.

    `drop_after`: send only that many body bytes, then close the connection (a cut transfer).
    """

    def __init__(self, root: Path, drop_after: int | None = None) -> None:
        self.root = root
        self.drop_after = drop_after
        self.requests: list[tuple[str, str | None]] = []
        super().__init__(_StoreHandler)

    def blob_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.requests if r[0].startswith("/content/")]


def write_store(root: Path, blobs: dict[str, bytes]) -> Path:
    """A DP store folder holding `blobs` (sha256 -> bytes) under their names."""
    for sha, data in blobs.items():
        path = blob_path(root, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


class _CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self) -> None:
        canned: CannedServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        canned.requests.append((self.command, self.path, dict(self.headers), body))
        status, headers, payload = canned.respond(self.command, self.path, dict(self.headers))
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


Responder = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], Any]]


class CannedServer(_Base):
    """Answers each request with whatever `respond(method, path, headers)` returns."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        super().__init__(_CannedHandler)
